"""The loading machinery behind :mod:`vasa.config`: field metadata (allowed choices, ranges), the
strict check of one ``params.yaml`` section against its dataclass, YAML reading and the overlays of
profiles and ``section.key=value`` overrides. Every error is one :class:`~vasa.errors.VasaError` line
that names the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from vasa.errors import VasaError


def _choice(*values: Any) -> dict:
    return {"choices": values}


def _range(lo: float | None = None, hi: float | None = None) -> dict:
    return {"range": (lo, hi)}


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation in ("int", int):
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in ("float", float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation in ("str", str):
        return isinstance(value, str)
    if annotation in ("bool", bool):
        return isinstance(value, bool)
    if annotation in ("list", list) or origin is list:
        return isinstance(value, list)
    if annotation in ("dict", dict) or origin is dict:
        return isinstance(value, dict)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    return True


def build_section(cls: type, values: dict[str, Any], section: str) -> Any:
    """Build dataclass ``cls`` from ``values``, checking keys, types, choices and ranges."""
    if not isinstance(values, dict):
        raise VasaError(f"params: section '{section}' must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            raise VasaError(
                f"params: unknown key '{section}.{key}' (allowed: {', '.join(fields)})"
            )
        f = fields[key]
        if not _type_ok(value, f.type):
            raise VasaError(
                f"params: '{section}.{key}' must be of type {f.type}, got {value!r}"
            )
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            allowed = ", ".join(map(str, f.metadata["choices"]))
            raise VasaError(f"params: '{section}.{key}' = {value!r} is not allowed (allowed: {allowed})")
        if "range" in f.metadata:
            lo, hi = f.metadata["range"]
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise VasaError(f"params: '{section}.{key}' = {value!r} is out of range [{lo}, {hi}]")
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def deep_merge(base: dict, over: dict) -> dict:
    """Recursively overlay ``over`` on ``base`` (new dict; lists are replaced, not merged)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with one-line errors for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise VasaError(f"params: file not found: {p} (run from the repository root or pass its path)")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise VasaError(f"params: {p} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise VasaError(f"params: {p} must contain a mapping of sections")
    return data


def parse_overrides(items: list[str] | None) -> dict:
    """``["prepare.clips=10", ...]`` -> nested dict, values parsed as YAML scalars."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise VasaError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out
