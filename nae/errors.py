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


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a training after it finished its step and wrote a checkpoint.

    A KeyboardInterrupt, so that a notebook cell or a script stops as on Ctrl-C (nothing
    after ``fit()`` runs on a half-trained model); the message says how to resume.
    ``signal`` is the signal's name (``"SIGTERM"``), ``exit_status`` 128 + its number.
    """

    def __init__(self, message: str, signal: str, exit_status: int):
        super().__init__(message)
        self.signal = signal
        self.exit_status = exit_status
