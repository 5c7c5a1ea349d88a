"""User-facing errors.

Every error that a user can fix (a missing data set, an unknown config key, a wrong
checkpoint, a diverged run) is raised as a subclass of :class:`NAEError`.  The command
line prints such errors as one line on stderr and exits with a non-zero status; other
exceptions are bugs and keep their traceback.
"""


class NAEError(Exception):
    """Base class of all errors whose message tells the user what to fix."""


class ConfigError(NAEError):
    """A configuration file or override is invalid (unknown key, wrong type, ...)."""


class DataError(NAEError):
    """A data set is missing, corrupt, or does not fit the model."""


class CheckpointError(NAEError):
    """A run directory or checkpoint is missing, corrupt or does not fit the model."""


class DivergenceError(NAEError):
    """Training produced NaN or inf values."""
