"""User-facing errors.

Anything a user can get wrong (a recipe field, a path, a value, a file) raises `PdegenError`
with one line that names the culprit and what is allowed. The CLI prints that line and exits
non-zero; any other exception is a bug and keeps its traceback.
"""


class PdegenError(Exception):
    """A mistake in user input, reported as one line without a traceback."""


class RecipeError(PdegenError):
    """A recipe field is missing, unknown, mistyped or out of range."""
