"""The one exception type that reaches users as a message instead of a traceback."""


class UserError(Exception):
    """Bad input or environment the user can fix; scripts print it as one line and exit 2."""
