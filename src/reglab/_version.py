"""reglab's version, apart so that any module can name it without importing the package's public API."""

__version__ = "0.1.0"
