"""gridexp: run a grid of machine-learning experiments across many machines.

The server (`gridexp-server`) and the worker (`gridexp-worker`) are C++ programs installed
with this package; this module is the Python side that ships with them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gridexp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
