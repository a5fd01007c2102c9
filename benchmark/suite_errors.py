"""Reading suite files, with every problem as one line.

``SuiteError`` and the translation of pydantic's errors; the YAML reader (syntax errors,
duplicate keys), ``include`` resolution and environment-variable expansion, whose errors
name the file each value came from. A problem reads ``<file>: <field path>: <what was
expected>, got <what was found><; did you mean 'x'?>`` with the path in dotted/indexed
form (``scenarios[1].rho``); pydantic's own multi-line text is never shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from benchmark.errors import BenchError, did_you_mean

Loc = tuple[Any, ...]
FileFor = Callable[[Loc], str]
CUSTOM = "suite"  # the pydantic error type of ``custom`` errors


class SuiteError(BenchError):
    """A problem in a suite file, printed as one line: ``<file>: <field>: <detail>``.

    Args:
        file: the file (or ``file:line:col``) the problem is in.
        field: the field path, as a string or a location tuple; empty for the whole file.
        detail: what was expected and what was found.
    """

    def __init__(self, file: str | Path, field: str | Sequence[Any] = "", detail: str = ""):
        self.file = str(file)
        self.field = field if isinstance(field, str) else field_path(field)
        self.detail = " ".join(detail.split())
        super().__init__(": ".join(p for p in (self.file, self.field, self.detail) if p))


def field_path(loc: Iterable[Any]) -> str:
    """``("scenarios", 1, "rho")`` → ``"scenarios[1].rho"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it (YAML spelling), shortened to one short line."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list) and not value:
        return "an empty list"
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def custom(message: str, sub: str = "") -> PydanticCustomError:
    """A validation error shown as ``message``, at ``sub`` below the validated field."""
    return PydanticCustomError(CUSTOM, "{message}", {"message": message, "sub": sub})


# --- pydantic errors → one line ---------------------------------------------------------


def _find_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    return next(filter(None, map(_find_model, get_args(tp))), None)


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    cls: type[BaseModel] | None = root
    for part in (p for p in loc if not isinstance(p, int)):
        field = cls.model_fields.get(part) if cls is not None else None
        cls = _find_model(field.annotation) if field is not None else None
    return cls


def _is_int_field(root: type[BaseModel], loc: Loc) -> bool:
    names = [p for p in loc if not isinstance(p, int)]
    cls = _model_at(root, tuple(names[:-1])) if names else None
    field = cls.model_fields.get(names[-1]) if cls is not None else None
    return field is not None and _has_int(field.annotation)


def _has_int(tp: Any) -> bool:
    return tp is int or any(map(_has_int, get_args(tp)))


_EXPECTED = {
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "an integer"),
    **dict.fromkeys(("float_type", "float_parsing"), "a number"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "true or false"),
    **dict.fromkeys(("list_type", "tuple_type"), "a list"),
    **dict.fromkeys(("dict_type", "model_type", "model_attributes_type"), "a mapping"),
    "finite_number": "a finite number",
    "string_type": "a string",
    "string_too_short": "a non-empty string",
    "path_type": "a path",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def describe(error: dict[str, Any], integer: bool = False) -> str:
    """One pydantic error (an item of ``errors()``) as ``expected ..., got ...``."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "expected a value (required key), got nothing"
    if kind in _EXPECTED:
        expected = _EXPECTED[kind]
    elif kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        expected = f"{'an integer' if integer else 'a number'} {_BOUNDS[kind]} {bound}"
    elif kind in ("literal_error", "enum"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        expected = "one of " + ", ".join(choices)
    elif kind == "string_pattern_mismatch":
        expected = "a name matching " + str(ctx.get("pattern", "")).strip("^$")
    elif kind in ("too_short", "too_long"):
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        word = "at least" if kind == "too_short" else "at most"
        expected = f"{word} {n} item{'s' if n != 1 else ''}"
    else:
        msg = " ".join(str(error.get("msg", kind)).split())
        expected = msg.removeprefix("Input should be ").removeprefix("Value error, ")
    return f"expected {expected}, got {show(value)}"


def translate(
    exc: ValidationError, file_for: FileFor, root: type[BaseModel], extra_keys: Sequence[str] = ()
) -> SuiteError:
    """The first error of ``exc`` as a one-line ``SuiteError``.

    An unknown key is reported before any other error: a misspelt key usually also
    leaves a required one missing, and the spelling is the thing to fix.

    Args:
        exc: the validation error of ``root``.
        file_for: the file the value at a location came from.
        root: the model that was validated, to list the keys a mapping accepts.
        extra_keys: top-level keys the loader consumes before validation (``include``).
    """
    errors = exc.errors(include_url=False)
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc: Loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        key, parent = loc[-1], loc[:-1]
        cls = _model_at(root, parent)
        known = [k for k in (cls.model_fields if cls else ()) if k != "source"]
        known += list(extra_keys) if cls is root else []
        hint = did_you_mean(str(key), known) or (
            "; expected one of " + ", ".join(known) if known else ""
        )
        return SuiteError(file_for(loc), parent, f"unknown key {key!r}{hint}")
    if error["type"] == CUSTOM:
        ctx = error.get("ctx") or {}
        path, sub = field_path(loc), str(ctx.get("sub", ""))
        path += "." + sub if path and sub and not sub.startswith("[") else sub
        return SuiteError(file_for(loc), path, str(ctx.get("message", "")))
    return SuiteError(file_for(loc), loc, describe(error, _is_int_field(root, loc)))


# --- environment variables ----------------------------------------------------------------

_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*)|(\$))")


def expand_vars(text: str) -> str:
    """Expand ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` (``$$`` is a literal ``$``).

    The default applies when the variable is unset or empty, as in the shell.

    Raises:
        KeyError: with the name of the first variable that is not set and has no default.
    """

    def sub(match: re.Match[str]) -> str:
        if match.group(4):
            return "$"
        name, default = match.group(1) or match.group(3), match.group(2)
        if default is not None:
            return os.environ.get(name) or default
        return os.environ[name]

    return _VAR.sub(sub, text)


def _expand(text: str, file: str, loc: Loc, *, path: bool = False) -> str:
    try:
        out = expand_vars(text)
    except KeyError as exc:
        msg = f"environment variable {exc.args[0]!r} is not set (in {text!r})"
        raise SuiteError(file, loc, msg) from None
    return os.path.expanduser(out) if path else out


def _expand_tree(value: Any, file_for: FileFor, loc: Loc) -> Any:
    if isinstance(value, str):
        return _expand(value, file_for(loc), loc)
    if isinstance(value, dict):
        return {k: _expand_tree(v, file_for, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_tree(v, file_for, (*loc, i)) for i, v in enumerate(value)]
    return value


def _expand_suite(data: dict[str, Any], file_for: FileFor) -> None:
    """Expand variables in place: path fields (and ``~``) and strings in dataset params."""
    from benchmark.suite_model import FILE_FIELDS  # suite_model imports this module

    model_files = [("model", k) for k in FILE_FIELDS]
    for loc in (("db",), ("cache_dir",), *model_files):
        parent = data.get("model") if len(loc) == 2 else data
        if isinstance(parent, dict) and isinstance(parent.get(loc[-1]), str):
            parent[loc[-1]] = _expand(parent[loc[-1]], file_for(loc), loc, path=True)
    dataset = data.get("dataset")
    for split in ("train", "test"):
        spec = dataset.get(split) if isinstance(dataset, dict) else None
        if isinstance(spec, dict) and "params" in spec:
            spec["params"] = _expand_tree(spec["params"], file_for, ("dataset", split, "params"))


# --- reading and including ----------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (the second would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(path, "", "no such file") from None
    except IsADirectoryError:
        raise SuiteError(path, "", "expected a suite file, got a directory") from None
    except UnicodeDecodeError:
        raise SuiteError(path, "", "expected UTF-8 text, got binary data") from None
    except OSError as exc:
        raise SuiteError(path, "", f"cannot read the file ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SuiteError(where, "", f"YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SuiteError(path, "", f"YAML syntax error: {exc}") from None
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else show(data)
        found = "an empty file" if data is None else found
        msg = f"expected a mapping of suite keys at the top level, got {found}"
        raise SuiteError(path, "", msg)
    return data


def _origins(value: dict[Any, Any], file: str, prefix: Loc = ()) -> dict[Loc, str]:
    out: dict[Loc, str] = {}
    for key, item in value.items():
        out[(*prefix, key)] = file
        if isinstance(item, dict):
            out.update(_origins(item, file, (*prefix, key)))
    return out


def _merge(base: dict[Any, Any], over: dict[Any, Any]) -> dict[Any, Any]:
    """``over`` deep-merged onto ``base``: mappings key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def _load_tree(path: Path, chain: tuple[tuple[Path, str], ...] = ()) -> tuple[dict, dict]:
    """The file's keys merged over its includes, and the file each key path came from."""
    file = str(path)
    data = _read(path)
    include = data.pop("include", None)
    origins = _origins(data, file)
    if include is None:
        return data, origins
    if not isinstance(include, str) or not include.strip():
        raise SuiteError(file, "include", f"expected a path to a suite file, got {show(include)}")
    target = Path(os.path.normpath(path.parent / _expand(include, file, ("include",), path=True)))
    shown = str(target)
    chain = (*chain, (path.resolve(), file))
    for i, (seen, _) in enumerate(chain):
        if seen == target.resolve():
            cycle = " -> ".join([name for _, name in chain[i:]] + [shown])
            raise SuiteError(file, "include", f"expected no include cycle, got {cycle}")
    if not target.is_file():
        msg = f"expected an existing suite file, got {include!r} ({shown}: no such file)"
        raise SuiteError(file, "include", msg)
    base, base_origins = _load_tree(target, chain)
    return _merge(base, data), {**base_origins, **origins}


def read(path: Path) -> tuple[dict[str, Any], FileFor]:
    """A suite file's keys merged over its includes, variables expanded, and their files.

    Args:
        path: the suite YAML file.

    Returns:
        The merged mapping (without ``include``) and ``file_for(loc)``: the file that set
        the value at a location (its longest prefix that a file set; else ``path``).
    """
    data, origins = _load_tree(path)

    def file_for(loc: Loc) -> str:
        hits = (origins[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origins)
        return next(hits, str(path))

    _expand_suite(data, file_for)
    return data, file_for
