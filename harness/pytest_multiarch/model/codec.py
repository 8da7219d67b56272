"""Dataclasses to JSON and back, checked against their type hints, and the JSON Schema of the
same types. One definition of each record serves the report writer, its readers and its schema.

Supported field types: str, int, float, bool, Path, ``Literal[...]``, ``X | None``, ``list[X]``,
``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from pytest_multiarch.core.errors import MultiarchError

T = TypeVar("T")


class ReportFormatError(MultiarchError):
    """A JSON document does not match the run model."""


def dump(value: object) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, numbers, bools, None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: dump(getattr(value, f.name)) for f in _public_fields(value)}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): dump(v) for k, v in value.items()}
    if isinstance(value, PurePath):
        return str(value)
    return value


def load(cls: type[T], data: object, where: str = "$", *, complete: bool = False) -> T:
    """An instance of dataclass ``cls`` from JSON ``data``; ReportFormatError names the path
    (``$.tests[3].outcome``) of the first value that does not fit. Keys the class does not
    define are ignored, so derived fields (a matrix written for other readers) may be present.

    A key whose field has a default may be missing, unless ``complete``: then every field of
    every dataclass in it must be there (a document ``dump`` wrote always has them all, so a
    missing one means it is not such a document, not that the default holds)."""
    return typing.cast(T, _load(cls, data, where, complete))


def _load(tp: Any, data: object, where: str, complete: bool = False) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(data, Mapping):
            raise ReportFormatError(f"{where}: expected an object, got {_kind(data)}")
        hints = get_type_hints(tp)
        values: dict[str, Any] = {}
        for field in _public_fields(tp):
            if field.name in data:
                values[field.name] = _load(
                    hints[field.name], data[field.name], f"{where}.{field.name}", complete
                )
            elif complete or _required(field):
                raise ReportFormatError(f"{where}: missing key {field.name!r}")
        return tp(**values)
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is typing.Literal:
        if data not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ReportFormatError(f"{where}: expected one of {allowed}, got {data!r}")
        return data
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _load(inner[0], data, where, complete)
    if origin in (list, tuple):
        if not isinstance(data, list):
            raise ReportFormatError(f"{where}: expected a list, got {_kind(data)}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(data) != len(args):
                raise ReportFormatError(f"{where}: expected {len(args)} items, got {len(data)}")
            return tuple(
                _load(a, v, f"{where}[{i}]", complete)
                for i, (a, v) in enumerate(zip(args, data, strict=True))
            )
        items = [_load(args[0], v, f"{where}[{i}]", complete) for i, v in enumerate(data)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(data, Mapping):
            raise ReportFormatError(f"{where}: expected an object, got {_kind(data)}")
        return {str(k): _load(args[1], v, f"{where}.{k}", complete) for k, v in data.items()}
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ReportFormatError(f"{where}: expected a number, got {_kind(data)}")
        return float(data)
    if tp is Path:
        if not isinstance(data, str):
            raise ReportFormatError(f"{where}: expected a path string, got {_kind(data)}")
        return Path(data)
    if tp in (str, int, bool):
        if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
            raise ReportFormatError(f"{where}: expected {tp.__name__}, got {_kind(data)}")
        return data
    raise TypeError(f"the run model has a field of unsupported type {tp!r} at {where}")


INTERNAL = {"internal": True}  # field metadata: kept in memory, never written or read


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _public_fields(cls: Any) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _kind(data: object) -> str:
    return f"{type(data).__name__} {data!r}"[:80]


def json_schema(cls: type[Any], *, complete: bool = False) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of dataclass ``cls``; nested dataclasses go to ``$defs``.
    ``complete``: every field is required, as ``load(..., complete=True)`` reads it."""
    defs: dict[str, Any] = {}
    _schema(cls, defs, complete)
    top = defs.pop(cls.__name__)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **top, "$defs": defs}


def schema_of(tp: Any, defs: dict[str, Any], *, complete: bool = False) -> dict[str, Any]:
    """The schema of one type, adding the dataclasses it names to ``defs``."""
    return _schema(tp, defs, complete)


def _schema(tp: Any, defs: dict[str, Any], complete: bool = False) -> dict[str, Any]:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder: recursion stops here
            hints = get_type_hints(tp)
            fields = _public_fields(tp)
            defs[name] = {
                "type": "object",
                "description": (tp.__doc__ or "").strip().splitlines()[0] if tp.__doc__ else "",
                "properties": {f.name: _schema(hints[f.name], defs, complete) for f in fields},
                "required": [f.name for f in fields if complete or _required(f)],
            }
        return {"$ref": f"#/$defs/{name}"}
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(a, defs, complete) for a in args]}
    if origin in (list, tuple):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return {
                "type": "array",
                "prefixItems": [_schema(a, defs, complete) for a in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        return {"type": "array", "items": _schema(args[0], defs, complete)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], defs, complete)}
    simple = {
        Path: "string",
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"the run model has a field of unsupported type {tp!r}")
