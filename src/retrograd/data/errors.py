"""The data package's one error type."""


class DataError(ValueError):
    """The data at a path cannot be used; the message says where and why, in one line."""
