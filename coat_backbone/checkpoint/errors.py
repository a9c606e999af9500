"""The one error of checkpoint handling, raised by every step from finding a file to loading it."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, read or loaded into the model; the message names the
    file, the cause and the fix."""
