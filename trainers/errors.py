"""The one exception type that reaches users as a message instead of a traceback."""

import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input or environment the user can fix; scripts print it as one line and exit 2."""


def exit_on_user_error(main: Callable[[], object]) -> None:
    """Runs a command-line `main`, printing a UserError as one `error:` line with exit status 2."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
