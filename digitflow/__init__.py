"""digitflow: a batch system for handwritten digits."""

__version__ = "0.1.0"
