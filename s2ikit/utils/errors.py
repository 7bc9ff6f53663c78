"""Error types. A `UserError` is shown as one line with no traceback by the CLI."""


class UserError(Exception):
    """Bad input or setup that the user can fix; the message names the file or flag and the problem."""


class SampleError(Exception):
    """One sample (an image, a caption, an utterance) cannot be used; the run records it and goes on."""
