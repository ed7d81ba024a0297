"""What every script's `main` shares: a --help generated from the config, and bad input as one line.

A misspelled config key, a missing config file, a value of the wrong type or a missing flag is
caught before `main` starts; these and a UserError from the run each print one `error:` line on
stderr and exit with status 2. The scripts keep only their flags and their `main`.
"""

import difflib
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from absl import app, flags
from absl import logging as absl_logging

from jax_models.errors import UserError
from scripts import config_help
from scripts.logs import project_records_only

FLAGS = flags.FLAGS
HELP_ARGS = frozenset(
    {"-h", "-?", "--help", "-help", "--helpshort", "-helpshort", "--helpfull", "-helpfull"}
)


def _fail(error: Exception) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def _config_arg(args: list[str]) -> str | None:
    """The --config value the command line gives (`--config=FILE` or `--config FILE`; last wins)."""
    value = None
    for i, arg in enumerate(args):
        if match := re.fullmatch(r"--?config(?:=(.*))?", arg):
            value = match[1] if match[1] is not None else next(iter(args[i + 1 :]), None)
    return value


def _help(config: str) -> str:
    """Usage, the script's docstring and flags, then the config files and the keys of `config`."""
    script = sys.modules["__main__"]
    program = f"python -m {script.__spec__.name}" if script.__spec__ else sys.argv[0]
    own = sorted(FLAGS.get_key_flags_for_module(sys.argv[0]), key=lambda flag: flag.name)
    forms = {flag.name: f"--{flag.name}={flag.name.upper()}" for flag in own}
    usage = [forms[f.name] if f.default is None else f"[{forms[f.name]}]" for f in own]
    width = max(map(len, forms.values()))
    return "\n".join(
        [
            f"usage: {program} {' '.join(usage)} [--config.KEY=VALUE ...]",
            "",
            (script.__doc__ or "").strip(),
            "",
            "flags:",
            *(f"  {forms[f.name]:<{width}}  {f.help}" for f in own),
            "",
            config_help.config_reference(config),
        ]
    )


def _kind(value: Any) -> str:
    """The type a value must have to replace `value`: `int`, or `tuple of int` for (20, 40)."""
    if isinstance(value, tuple) and len({type(item) for item in value}) == 1:
        return f"tuple of {type(value[0]).__name__}"
    return type(value).__name__


def _wrong_type(key: str, given: object, default: Any) -> str:
    example = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return (
        f"config key '{key}' must be {_kind(default)} (default: {default!r}), not {given!r}; "
        f"pass e.g. --config.{key}={example}."
    )


def _check_keys(args: list[str], defaults: dict[str, Any], config: str) -> None:
    """Rejects --config.KEY overrides naming no key of `config`, with the closest key as a hint."""
    for arg in args:
        match = re.match(r"--?(?:no)?config\.([^=]+)", arg)
        if match and match[1] not in defaults:
            close = difflib.get_close_matches(match[1], list(defaults), n=1)
            hint = f"did you mean '{close[0]}'? See" if close else "see"
            raise UserError(
                f"unknown config key '{match[1]}'; {hint} --help for the keys of {config}."
            )


def _check_tuples(defaults: dict[str, Any]) -> None:
    """ml_collections takes any tuple for a tuple key; hold it to the default's element type."""
    for key, value in config_help.flatten(FLAGS.config).items():
        default = defaults[key]
        if _kind(default).startswith("tuple of ") and not all(
            isinstance(item, type(default[0])) for item in value
        ):
            raise UserError(_wrong_type(key, value, default))


def _flag_error(error: flags.Error, defaults: dict[str, Any]) -> str:
    """absl's message for a bad flag, rephrased to say what to pass instead."""
    message = str(error)
    if match := re.match(r"flag --config\.(\S+?)=", message):
        # absl's message is `flag --NAME=VALUE: REASON`, REASON being the parser's own error.
        given = message[match.end() :].removesuffix(f": {error.__context__}")
        return _wrong_type(match[1], given, defaults[match[1]])
    if match := re.search(r"Flag --(\w+) must have a value other than None", message):
        name = match[1]
        return f"missing --{name}; pass --{name}={name.upper()}: {FLAGS[name].help}"
    return f"{' '.join(message.split())}; see --help."


def _parse_flags(argv: list[str], help_config: str, default_config: str | None) -> list[str]:
    """absl's flag parsing, except that --help describes the config and bad input is a UserError."""
    args = argv[1:]
    config = _config_arg(args)
    if config is None and default_config is not None:
        config = default_config
        argv = [argv[0], f"--config={config}", *args]
    if HELP_ARGS.intersection(args):
        try:
            print(_help(config or help_config), flush=True)
        except BrokenPipeError:  # `--help | head` stopped reading: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    if config is None:
        choices = ", ".join(config_help.config_files())
        raise UserError(f"missing --config; pass --config=FILE with FILE one of {choices}.")
    defaults = config_help.flatten(config_help.load_config(config))
    _check_keys(args, defaults, config)
    try:
        remaining = FLAGS(argv)
    except flags.Error as error:
        raise UserError(_flag_error(error, defaults)) from None
    _check_tuples(defaults)
    return remaining


def run_main(
    main: Callable[[list[str]], None],
    help_config: str = "configs/default.py",
    default_config: str | None = None,
) -> None:
    """Runs the absl `main` of a script with a `--config` file flag, bad input as one line.

    `default_config` is the config a command line without `--config` runs (None: `--config`
    is required); `help_config` is the one --help lists when the command line names none.
    """

    def parse(argv: list[str]) -> list[str]:
        try:
            return _parse_flags(argv, help_config, default_config)
        except UserError as error:
            _fail(error)

    def guarded(argv: list[str]) -> None:
        # Library INFO lines (TPU probing, orbax saves, font caches) bury the run's own.
        absl_logging.get_absl_handler().addFilter(project_records_only)
        try:
            if len(argv) > 1:
                raise UserError(
                    f"Unexpected arguments {' '.join(argv[1:])}; pass settings as "
                    "--config.KEY=VALUE."
                )
            main(argv)
        except UserError as error:
            _fail(error)
        except KeyboardInterrupt:
            print("interrupted: rerun the same command to resume.", file=sys.stderr)
            sys.exit(130)

    app.run(guarded, flags_parser=parse)
