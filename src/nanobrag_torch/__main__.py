from .cli import entry

if __name__ == "__main__":  # Dask's worker processes import this module again under another name
    entry()
