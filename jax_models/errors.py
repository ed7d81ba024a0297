"""The one exception type that reaches users as a message instead of a traceback.

It lives at the bottom of the import graph so that the models (an unknown name), the trainers,
the scripts and the app can all raise it without importing upwards.
"""


class UserError(Exception):
    """Bad input or environment the user can fix; scripts print it as one line and exit 2."""
