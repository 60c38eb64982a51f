"""Suite-wide settings."""
import os

# automatic runs never start background kernel builds from the test suite (the tests of that
# policy switch it back on with their own kernel cache)
os.environ.setdefault("NANOBRAGG_BACKGROUND_BUILDS", "0")
