"""camrelay: a camera relay for command centres."""

__version__ = "0.1.0"
