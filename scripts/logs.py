"""Keeps a script's log to the project's own lines and to every library's warnings.

absl sets the root logger to INFO, so every library's INFO records reach the terminal: JAX
probing for libtpu ("Unable to initialize backend 'tpu'"), orbax describing each save,
matplotlib building its font cache, tfds locating datasets. None was asked for; they bury the
run's own lines. Warnings and errors still pass, whoever logs them.
"""

import logging
from pathlib import Path

# Not resolved: records name their files by the path Python imported them from, as this one.
ROOT = Path(__file__).absolute().parents[1]
# The project's own code: the repository's top-level packages, not a virtualenv inside it.
PROJECT_DIRS = tuple(
    f"{path}/" for path in sorted(ROOT.iterdir()) if (path / "__init__.py").is_file()
)


def project_records_only(record: logging.LogRecord) -> bool:
    """True for a warning or worse, or for a record logged by the project's own code."""
    return record.levelno >= logging.WARNING or record.pathname.startswith(PROJECT_DIRS)
