"""User-facing errors: one line that names the problem and the fix, never a traceback."""


class VasaError(Exception):
    """An error caused by user input or environment, printed as one line by the CLI."""
