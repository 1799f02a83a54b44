"""The one exception type for bad input, carrying the path of the offending field."""

from __future__ import annotations

__all__ = ["NetworkError"]


class NetworkError(ValueError):
    """A network file (or an input to it) is malformed.

    Members
    -------
    path : str
        The field path, e.g. ``layers[2].weights`` (empty for the file as a whole).
    message : str
        What is wrong with it.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)
