"""Draft 2020-12 validation of runspec's own generated schemas, without importing jsonschema.

``jsonschema`` (with ``referencing`` and ``attrs``) took about as long to import as the rest
of a ``runspec validate`` that builds no plan. The checked-in schemas use a small set of keywords,
so this validator implements exactly those, and yields every violation as an error shaped
like jsonschema's (``validator``, ``validator_value``, ``instance``, ``schema``, paths,
``context`` for unions, the same ``message``): ``explain`` reads either. A keyword it does
not implement is refused when the validator is built, so a schema change cannot silently
check less. A test holds the errors equal to jsonschema's on every fixture.

One difference on purpose: an integer must be one (``2.0`` and ``1e308`` are numbers, not
integers), since the models would otherwise coerce them or fail with a traceback.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator
from functools import cache
from numbers import Number
from typing import Any

# Keywords that only annotate: they never produce an error.
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description",
                          "default", "examples", "deprecated", "readOnly", "writeOnly"})


class SchemaError:
    """One violation, with the attributes of ``jsonschema.ValidationError`` that ``explain``
    reads (paths are relative to the ``parent`` error of a union's ``context``)."""

    __slots__ = ("message", "validator", "validator_value", "instance", "schema", "path",
                 "schema_path", "context", "parent", "placed")

    def __init__(self, message: str, context: list[SchemaError] | None = None) -> None:
        self.message = message
        self.validator: str | None = None
        self.validator_value: Any = None
        self.instance: Any = None
        self.schema: Any = None
        self.path: deque[str | int] = deque()
        self.schema_path: deque[str | int] = deque()
        self.context = context or []
        self.parent: SchemaError | None = None
        self.placed = False  # validator, its value, instance and schema are set
        for child in self.context:
            child.parent = self

    @property
    def relative_path(self) -> deque[str | int]:
        return self.path

    @property
    def relative_schema_path(self) -> deque[str | int]:
        return self.schema_path

    @property
    def absolute_path(self) -> deque[str | int]:
        if self.parent is None:
            return self.path
        return deque([*self.parent.absolute_path, *self.path])

    @property
    def absolute_schema_path(self) -> deque[str | int]:
        if self.parent is None:
            return self.schema_path
        return deque([*self.parent.absolute_schema_path, *self.schema_path])

    def __repr__(self) -> str:
        return f"<SchemaError {self.validator}: {self.message!r}>"


def _is_type(instance: Any, name: str) -> bool:
    if name == "object":
        return isinstance(instance, dict)
    if name == "array":
        return isinstance(instance, list)
    if name == "string":
        return isinstance(instance, str)
    if name == "integer":
        return isinstance(instance, int) and not isinstance(instance, bool)
    if name == "number":
        return isinstance(instance, Number) and not isinstance(instance, bool)
    if name == "boolean":
        return isinstance(instance, bool)
    if name == "null":
        return instance is None
    raise ValueError(f"unknown JSON Schema type {name!r}")


def _equal(one: Any, two: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, in lists and tables too."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list | tuple) and isinstance(two, list | tuple):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return len(one) == len(two) and all(k in two and _equal(v, two[k])
                                            for k, v in one.items())
    if isinstance(one, bool) or isinstance(two, bool):
        return False  # one is not both (checked above): True vs 1, False vs 0
    return bool(one == two)


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


Errors = Iterator[SchemaError]


class Validator:
    """Validates instances against ``schema``; ``$ref`` resolves inside ``root``."""

    def __init__(self, schema: Any, root: Any = None) -> None:
        self.schema = schema
        self.root = schema if root is None else root
        _refuse_unknown_keywords(self.root)

    def iter_errors(self, instance: Any) -> Errors:
        return self._errors(instance, self.schema)

    def is_valid(self, instance: Any, schema: Any = None) -> bool:
        subject = self.schema if schema is None else schema
        return next(self._errors(instance, subject), None) is None

    def descend(self, instance: Any, schema: Any, path: str | int | None = None,
                schema_path: str | int | None = None) -> Errors:
        for error in self._errors(instance, schema):
            if path is not None:
                error.path.appendleft(path)
            if schema_path is not None:
                error.schema_path.appendleft(schema_path)
            yield error

    def _errors(self, instance: Any, schema: Any) -> Errors:
        if schema is True:
            return
        if schema is False:
            error = SchemaError(f"False schema does not allow {instance!r}")
            error.instance, error.schema, error.placed = instance, schema, True
            yield error
            return
        for keyword, value in schema.items():
            check = _KEYWORDS.get(keyword)
            if check is None:
                continue
            for error in check(self, value, instance, schema):
                if not error.placed:
                    error.validator, error.validator_value = keyword, value
                    error.instance, error.schema, error.placed = instance, schema, True
                if keyword != "$ref":
                    error.schema_path.appendleft(keyword)
                yield error

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"only references inside the schema are supported, not {ref!r}")
        node = self.root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node


Keyword = Callable[[Validator, Any, Any, Any], Errors]


def _type(v: Validator, types: Any, instance: Any, schema: Any) -> Errors:
    names = [types] if isinstance(types, str) else types
    if not any(_is_type(instance, name) for name in names):
        yield SchemaError(f"{instance!r} is not of type {', '.join(repr(n) for n in names)}")


def _properties(v: Validator, properties: Any, instance: Any, schema: Any) -> Errors:
    if isinstance(instance, dict):
        for name, sub in properties.items():
            if name in instance:
                yield from v.descend(instance[name], sub, path=name, schema_path=name)


def _additional(v: Validator, allowed: Any, instance: Any, schema: Any) -> Errors:
    if not isinstance(instance, dict):
        return
    known = schema.get("properties", {})
    extras = [name for name in instance if name not in known]
    if isinstance(allowed, dict):
        for name in extras:
            yield from v.descend(instance[name], allowed, path=name)
    elif not allowed and extras:
        names = sorted(extras, key=str)
        verb = "was" if len(names) == 1 else "were"
        yield SchemaError("Additional properties are not allowed "
                          f"({', '.join(repr(n) for n in names)} {verb} unexpected)")


def _property_names(v: Validator, names: Any, instance: Any, schema: Any) -> Errors:
    if isinstance(instance, dict):
        for name in instance:
            yield from v.descend(name, names)


def _required(v: Validator, required: Any, instance: Any, schema: Any) -> Errors:
    if isinstance(instance, dict):
        for name in required:
            if name not in instance:
                yield SchemaError(f"{name!r} is a required property")


def _items(v: Validator, items: Any, instance: Any, schema: Any) -> Errors:
    if not isinstance(instance, list) or not instance:
        return
    if items is False:
        rest = instance if len(instance) != 1 else instance[0]
        yield SchemaError(f"Expected at most 0 items but found {len(instance)} extra: {rest!r}")
        return
    for index, item in enumerate(instance):
        yield from v.descend(item, items, path=index)


def _ref(v: Validator, ref: Any, instance: Any, schema: Any) -> Errors:
    yield from v._errors(instance, v.resolve(ref))


def _any_of(v: Validator, branches: Any, instance: Any, schema: Any) -> Errors:
    found: list[SchemaError] = []
    for index, branch in enumerate(branches):
        errors = list(v.descend(instance, branch, schema_path=index))
        if not errors:
            return
        found.extend(errors)
    yield SchemaError(f"{instance!r} is not valid under any of the given schemas", found)


def _one_of(v: Validator, branches: Any, instance: Any, schema: Any) -> Errors:
    found: list[SchemaError] = []
    for index, branch in enumerate(branches):
        errors = list(v.descend(instance, branch, schema_path=index))
        if not errors:
            also = [b for b in branches[index + 1:] if v.is_valid(instance, b)]
            if also:
                shown = ", ".join(repr(b) for b in [*also, branch])
                yield SchemaError(f"{instance!r} is valid under each of {shown}")
            return
        found.extend(errors)
    yield SchemaError(f"{instance!r} is not valid under any of the given schemas", found)


def _not(v: Validator, forbidden: Any, instance: Any, schema: Any) -> Errors:
    if v.is_valid(instance, forbidden):
        yield SchemaError(f"{instance!r} should not be valid under {forbidden!r}")


def _enum(v: Validator, allowed: Any, instance: Any, schema: Any) -> Errors:
    if not any(_equal(each, instance) for each in allowed):
        yield SchemaError(f"{instance!r} is not one of {allowed!r}")


def _const(v: Validator, expected: Any, instance: Any, schema: Any) -> Errors:
    if not _equal(instance, expected):
        yield SchemaError(f"{expected!r} was expected")


def _pattern(v: Validator, pattern: Any, instance: Any, schema: Any) -> Errors:
    if isinstance(instance, str) and not _regex(pattern).search(instance):
        yield SchemaError(f"{instance!r} does not match {pattern!r}")


def _is_number(instance: Any) -> bool:
    return isinstance(instance, Number) and not isinstance(instance, bool)


def _minimum(v: Validator, bound: Any, instance: Any, schema: Any) -> Errors:
    if _is_number(instance) and instance < bound:
        yield SchemaError(f"{instance!r} is less than the minimum of {bound!r}")


def _exclusive_minimum(v: Validator, bound: Any, instance: Any, schema: Any) -> Errors:
    if _is_number(instance) and instance <= bound:
        yield SchemaError(f"{instance!r} is less than or equal to the minimum of {bound!r}")


def _maximum(v: Validator, bound: Any, instance: Any, schema: Any) -> Errors:
    if _is_number(instance) and instance > bound:
        yield SchemaError(f"{instance!r} is greater than the maximum of {bound!r}")


def _exclusive_maximum(v: Validator, bound: Any, instance: Any, schema: Any) -> Errors:
    if _is_number(instance) and instance >= bound:
        yield SchemaError(f"{instance!r} is greater than or equal to the maximum of {bound!r}")


def _size(kind: type[list] | type[str], least: bool):
    """minItems/maxItems (lists) and minLength/maxLength (strings), worded as jsonschema
    words them."""
    def check(v: Validator, bound: Any, instance: Any, schema: Any) -> Errors:
        if not isinstance(instance, kind):
            return
        size = len(instance)
        if least and size < bound:
            yield SchemaError(f"{instance!r} "
                              + ("should be non-empty" if bound == 1 else "is too short"))
        elif not least and size > bound:
            yield SchemaError(f"{instance!r} "
                              + ("is expected to be empty" if bound == 0 else "is too long"))
    return check


_min_items, _max_items = _size(list, True), _size(list, False)
_min_length, _max_length = _size(str, True), _size(str, False)


_KEYWORDS: dict[str, Keyword] = {
    "type": _type, "properties": _properties, "additionalProperties": _additional,
    "propertyNames": _property_names, "required": _required, "items": _items, "$ref": _ref,
    "anyOf": _any_of, "oneOf": _one_of, "not": _not, "enum": _enum, "const": _const,
    "pattern": _pattern, "minimum": _minimum, "exclusiveMinimum": _exclusive_minimum,
    "maximum": _maximum, "exclusiveMaximum": _exclusive_maximum, "minItems": _min_items,
    "maxItems": _max_items, "minLength": _min_length, "maxLength": _max_length,
}
# Where a keyword's value is a schema (or schemas), to look for keywords inside.
_SUBSCHEMA = {"additionalProperties", "propertyNames", "items", "not"}
_SUBSCHEMAS = {"anyOf", "oneOf"}
_SCHEMA_MAPS = {"properties", "$defs"}


_CHECKED: dict[int, Any] = {}  # id → the schema, kept alive so that its id stays its own


def _refuse_unknown_keywords(schema: Any) -> None:
    """A keyword nobody implements here would be ignored: refuse the schema instead."""
    if id(schema) in _CHECKED:
        return
    stack, seen = [schema], set()
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        for keyword, value in node.items():
            if keyword in _SCHEMA_MAPS:
                stack.extend(value.values())
            elif keyword in _SUBSCHEMA:
                stack.append(value)
            elif keyword in _SUBSCHEMAS:
                stack.extend(value)
            elif keyword not in _KEYWORDS and keyword not in _ANNOTATIONS \
                    and not keyword.startswith("x-"):
                raise ValueError(f"JSON Schema keyword {keyword!r} is not supported")
    _CHECKED[id(schema)] = schema
