"""Command-line glue for UserError: one `error:` line and exit status 2 instead of a traceback."""

import sys
from collections.abc import Callable

from jax_models.errors import UserError


def exit_on_user_error(main: Callable[[], object]) -> None:
    """Runs a command-line `main`, printing a UserError as one `error:` line with exit status 2."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
