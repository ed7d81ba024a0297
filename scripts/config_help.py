"""The config reference that `--help` prints, generated from the config files so it cannot drift.

Keys and defaults come from calling a config file's `get_config()`; each key's description is
the comment beside, or the comment block right above, its `config.KEY = ...` line. A key the file
takes from another config module (`configs/compare.py`'s `train.*` from `configs/default.py`)
is described where that module assigns it.
"""

import ast
import importlib.util
import io
import os
import tokenize
from pathlib import Path
from typing import Any

import ml_collections

import configs
from jax_models.errors import UserError

CONFIG_DIR = Path(configs.__file__).parent


def _display(path: Path) -> str:
    """`configs/default.py` when run from the repository root, as users type it."""
    return os.path.relpath(path)


def config_files() -> dict[str, str]:
    """The files in configs/ that define `get_config`, each with its docstring's first line."""
    files = {}
    for path in sorted(CONFIG_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        if any(
            isinstance(node, ast.FunctionDef) and node.name == "get_config" for node in tree.body
        ):
            files[_display(path)] = (ast.get_docstring(tree) or "").partition("\n")[0]
    return files


def load_config(path: str) -> ml_collections.ConfigDict:
    """Runs `get_config()` of `path` (`FILE` or `FILE:ARG`, as --config takes it)."""
    file, *arg = path.split(":", 1)
    choices = ", ".join(config_files())
    spec = importlib.util.spec_from_file_location("help_config", file)
    if spec is None or not Path(file).is_file():
        raise UserError(f"config file {file} not found; pass one of {choices} as --config.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise UserError(f"{file} defines no get_config(); pass one of {choices} as --config.")
    return module.get_config(*arg)


def flatten(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    """Every leaf of `config` under the dotted key --config.KEY takes (`train.batch_size`)."""
    leaves = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            leaves.update(flatten(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def _assigned_key(target: ast.expr) -> str | None:
    """`a.b` for the target `config.a.b`, None for anything else."""
    parts = []
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name) and target.id == "config" and parts:
        return ".".join(reversed(parts))
    return None


def key_comments(source: str) -> dict[str, str]:
    """Dotted key -> the comment beside its `config.KEY = ...` line, else the block right above."""
    trailing: dict[int, str] = {}
    full_line: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            line, column = token.start
            text = token.string.lstrip("#").strip()
            (full_line if not token.line[:column].strip() else trailing)[line] = text
    comments = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assign):
            continue
        beside = [trailing[n] for n in range(node.lineno, node.end_lineno + 1) if n in trailing]
        above = []
        line = node.lineno - 1
        while line in full_line:
            above.insert(0, full_line[line])
            line -= 1
        for target in node.targets:
            key = _assigned_key(target)
            if key is not None and (beside or above):
                comments[key] = " ".join(beside or above)
    return comments


def _imported_configs(node: ast.AST) -> list[str]:
    """Names of the configs modules that an import statement imports."""
    if isinstance(node, ast.ImportFrom) and node.module == "configs":
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        modules = [node.module or ""]
    elif isinstance(node, ast.Import):
        modules = [alias.name for alias in node.names]
    else:
        return []
    return [module.removeprefix("configs.") for module in modules if module.startswith("configs.")]


def _config_modules(file: Path) -> list[Path]:
    """`file`, then the modules of the configs package it imports, depth first."""
    modules = [file]
    for node in ast.walk(ast.parse(file.read_text())):
        for name in _imported_configs(node):
            imported = CONFIG_DIR / f"{name}.py"
            if imported.is_file() and imported not in modules:
                modules += [m for m in _config_modules(imported) if m not in modules]
    return modules


def describe(path: str, keys: list[str]) -> dict[str, str]:
    """Each of `keys` -> its description in `path` or the config modules it imports ("" if none).

    A module that assigns no comment to the full key may still describe its last dotted
    component(s): `train.batch_size` falls back to `configs/default.py`'s `batch_size`.
    """
    comments = [key_comments(m.read_text()) for m in _config_modules(Path(path.split(":")[0]))]
    descriptions = {}
    for key in keys:
        parts = key.split(".")
        suffixes = [".".join(parts[i:]) for i in range(len(parts))]
        found = (module[s] for module in comments for s in suffixes if s in module)
        descriptions[key] = next(found, "")
    return descriptions


def config_reference(path: str) -> str:
    """The config files to choose from, then every key of `path` with default and description."""
    files = config_files()
    width = max(map(len, files))
    lines = ["config files (--config=FILE):"]
    lines += [f"  {file:<{width}}  {doc}" for file, doc in files.items()]
    defaults = flatten(load_config(path))
    lines += ["", f"keys of {path} (--config.KEY=VALUE overrides one; default shown):"]
    for key, description in describe(path, list(defaults)).items():
        lines += [f"  {key} = {defaults[key]!r}", f"      {description}"]
    return "\n".join(lines)
