"""The `nanoBragg` program (console script and `python -m nanobrag_torch`).

Start-up tuning lives here, in the program, and never runs when the library is imported."""
import gc
import sys


def main() -> None:
    """Import torch with the garbage collector paused, then run the command line (does not return)."""
    if "torch" not in sys.modules:
        # importing torch creates ~10^6 objects; collecting garbage among them while they load
        # costs a third of the import time of a short command-line run
        gc.disable()
        import torch  # noqa: F401

        gc.freeze()  # what was imported lives for the whole run: keep it out of later collections
        gc.enable()
    from .cli import entry

    entry()


if __name__ == "__main__":  # Dask's worker processes import this module again under another name
    main()
