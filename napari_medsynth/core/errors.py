"""The one exception type the product shows to users."""


class MedSynthError(Exception):
    """A failure the user can act on, carried as one line of text.

    The GUI shows ``str(error)`` in a notification and the CLIs print it and exit
    non-zero, so the message names the file or setting and the problem, with no
    traceback needed to understand it.
    """


class Cancelled(Exception):
    """The user cancelled a long computation; nothing was written."""
