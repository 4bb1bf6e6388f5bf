"""User-facing errors: each is reported as one line on stderr with exit code 2."""


class LetheError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class ConfigError(LetheError):
    """An unknown name, an out-of-range value or a conflicting option."""


class DataError(LetheError):
    """Missing, empty, corrupt or inconsistent data."""


class CheckpointError(LetheError):
    """A checkpoint that is missing, corrupt or does not match its architecture."""


class NonFiniteLossError(LetheError):
    """Training produced a NaN or infinite loss."""
