"""One exception type for everything a user can get wrong.

The CLI prints a :class:`BsrError` as a single line (``bsr: error: ...``) and exits
non-zero, so every message should name the problem *and* the fix.
"""


class BsrError(Exception):
    """A problem with the user's input, files or environment (not a bug in bsr)."""
