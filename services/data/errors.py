"""The one error of services.data (its own module so the readers and the row mapping share it)."""


class DataError(ValueError):
    """A dataset that cannot be read as the requested layout, or a malformed row (names the file, the
    row and the field)."""
