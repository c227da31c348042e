"""User-facing errors: one sentence saying what went wrong and what to do."""


class RadlabelError(Exception):
    """An error caused by input or environment that the user can fix.

    The CLI prints its message as one line, without a traceback.
    """
