"""The package's version, in one module that imports nothing.

``bsr/__init__`` re-exports it as ``bsr.__version__``; the modules that write it into
files and requests (checkpoints, model cards, training states, downloads) import it from
here, so that nothing inside the package imports the package's top.
"""

__version__ = "0.1.0"  # pyproject.toml reads it from here (dynamic = ["version"])
