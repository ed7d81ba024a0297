"""What every script's `main` shares: flag parsing errors and UserError become one line."""

import sys
from collections.abc import Callable

from absl import app
from absl import logging as absl_logging

from trainers.errors import UserError


def run_main(main: Callable[[list[str]], None]) -> None:
    """Runs an absl `main`, printing a UserError as one line on stderr with exit status 2."""

    def guarded(argv: list[str]) -> None:
        # Orbax logs several INFO lines per save; keep the log to the run's own lines.
        absl_logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
        try:
            if len(argv) > 1:
                raise UserError(
                    f"Unexpected arguments {' '.join(argv[1:])}; pass settings as "
                    "--config.KEY=VALUE."
                )
            main(argv)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: rerun the same command to resume.", file=sys.stderr)
            sys.exit(130)

    app.run(guarded)
