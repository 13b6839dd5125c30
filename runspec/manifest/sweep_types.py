"""Sweep values against the config values they replace: a sweep must keep the config's type.

``"model.hidden" = ["big", 64]`` where the config holds ``hidden: 32`` is refused by
``validate`` at the value, with the config's type, value and file, and what would fit.
"""

from __future__ import annotations

import math
from typing import Any

from runspec.manifest.document import Document, KeyPath, format_path
from runspec.manifest.errors import Diagnostic

_CONFIG_TYPES = {bool: ("a boolean", "booleans"), int: ("an integer", "integers"),
                 float: ("a float", "numbers"), str: ("a string", "strings")}
"""The config value types a sweep value must keep: (one, what fits)."""


def config_value(sources: list[tuple[Any, str]], key: str) -> tuple[Any, str] | None:
    """The config's value at the dotted ``key`` and the file it comes from (the recipe's
    config, else the script's default config under it); None where it is absent, null, a
    list or a table, whose type a sweep value need not keep."""
    for config, ref in sources:
        node: Any = config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            return (node, ref) if type(node) in _CONFIG_TYPES else None
    return None


def _fits(config_value: Any, value: Any) -> bool:
    """Can ``value`` stand where the config holds ``config_value``? An integer takes
    integers (a boolean is not one), a float integers or floats, a string strings and a
    boolean booleans."""
    if isinstance(config_value, bool) or isinstance(value, bool):
        return isinstance(config_value, bool) and isinstance(value, bool)
    if isinstance(config_value, int):
        return isinstance(value, int)
    if isinstance(config_value, float):
        return isinstance(value, int | float)
    return isinstance(value, str)


def _value_hint(document: Document, config_value: Any, value: Any) -> str:
    """What would fit: the value written as the config's type, or an example of one."""
    from runspec.manifest.suggest import literal

    fmt = document.notation
    if isinstance(config_value, bool):
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no",
                                                                "on", "off"):
            word = literal(fmt, value.strip().lower() in ("true", "yes", "on"))
            return (f"write {word} without quotes: the config holds a boolean"
                    if value.strip().lower() == word else
                    f"write {word} (unquoted): the config holds a boolean")
        return "write true or false: the config holds a boolean"
    if isinstance(config_value, int):
        number = _number_in(value)
        if isinstance(number, float) and number.is_integer():
            return f"write {int(number)}: the config holds an integer"
        if isinstance(number, int) and not isinstance(value, bool):
            return f"write {number} without quotes: the config holds an integer"
        if isinstance(number, float):
            return ("write whole numbers, or make the config value a float "
                    f"({float(config_value)}) if it may be fractional")
        return f"write an integer, such as {config_value}: the config holds an integer"
    if isinstance(config_value, float):
        number = _number_in(value)
        if isinstance(value, str) and number is not None:
            return f"write {value.strip()} without quotes: the config holds a number"
        return f"write a number, such as {config_value}: the config holds a float"
    if isinstance(value, bool | int | float):
        shown = literal(fmt, value) if not isinstance(value, str) else value
        return f'quote it, "{shown}": the config holds a string'
    return f"write a string, such as {literal(fmt, config_value)}: the config holds a string"


def _number_in(value: Any) -> int | float | None:
    """``value`` as a number if it is one or a string that spells one (``"64"``, ``"1e-3"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value.strip())
            except ValueError:
                continue
    return None


def sweep_type_diagnostics(document: Document, at: KeyPath, key: str, spec: Any,
                            config_value: Any, config_ref: str) -> list[Diagnostic]:
    """A sweep value replaces the config's value at ``key``: it must be of the same type
    (an integer config takes integers, a float one numbers), checked per listed value, and
    for a range or a distribution by what it draws."""
    import json

    from runspec.manifest.explain import describe

    out: list[Diagnostic] = []
    one, fitting = _CONFIG_TYPES[type(config_value)]
    wanted = "a number" if type(config_value) is float else one
    shown = json.dumps(config_value)
    shown = shown if len(shown) <= 40 else shown[:37] + "…" + shown[-1]
    holds = f"{key} is {one[one.index(' ') + 1:]} {shown} in {config_ref}"

    def report(path: KeyPath, message: str, hint: str, on_key: bool = False) -> None:
        position = document.key_position(path) if on_key else document.value_position(path)
        out.append(Diagnostic.at(position, format_path(path), message, hint, document))

    if isinstance(spec, list):
        values = [(at + (i,), v) for i, v in enumerate(spec)]
    elif isinstance(spec, dict) and isinstance(spec.get("values"), list):  # {values}, choice
        values = [(at + ("values", i), v) for i, v in enumerate(spec["values"])]
    else:
        values = []
    for path, value in values:
        if value is None or (isinstance(value, str) and "${" in value):
            continue  # null may clear a value on purpose; a reference is resolved per run
        if not _fits(config_value, value):
            report(path, f"expected {wanted}, got {describe(value)} ({holds})",
                   _value_hint(document, config_value, value))
    if not isinstance(spec, dict):
        return out
    numeric = isinstance(config_value, int | float) and not isinstance(config_value, bool)
    bounds = spec.get("range")
    if isinstance(bounds, list) and bounds and all(
            isinstance(b, int | float) and not isinstance(b, bool) for b in bounds):
        whole = all(float(b).is_integer() for b in bounds)
        if not numeric:
            report(at + ("range",), f"range {bounds} gives numbers, but {holds}",
                   f"list the values instead: the config takes {fitting}")
        elif isinstance(config_value, int) and not whole:
            report(at + ("range",), f"range {bounds} gives floats, but {holds}",
                   "use whole-number bounds and step, or make the config value a float "
                   f"({float(config_value)})")
    kind = spec.get("distribution")
    if kind in ("uniform", "log_uniform", "int_uniform"):
        draws = "integers" if kind == "int_uniform" else "floats"
        fmt_kv = _kv(document, "distribution", "int_uniform")
        if not numeric:
            report(at + ("distribution",), f'distribution "{kind}" draws {draws}, but {holds}',
                   f'use distribution "choice" with values: the config takes {fitting}')
        elif isinstance(config_value, int) and kind != "int_uniform":
            report(at + ("distribution",), f'distribution "{kind}" draws floats, but {holds}',
                   f"use {fmt_kv} to draw whole numbers")
        elif isinstance(config_value, int):
            for bound in ("min", "max"):
                value = spec.get(bound)
                if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
                    report(at + (bound,), f"{bound} {value} is not a whole number, but {holds}",
                           f"int_uniform draws whole numbers: write {bound} as one, such as "
                           f"{math.ceil(value) if bound == 'min' else math.floor(value)}")
    return out


def _kv(document: Document, key: str, value: Any) -> str:
    from runspec.manifest.suggest import assignment

    return assignment(document.notation, key, value)
