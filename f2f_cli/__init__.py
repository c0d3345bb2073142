"""f2f: the Fridge2Fork backend and operations toolkit."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("f2f")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
