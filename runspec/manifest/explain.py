"""Turn schema errors into Diagnostics a person can act on.

``schema_validator`` finds every violation; this module says each one plainly: the key
path, what was expected, what was found, and a did-you-mean. For ``oneOf`` it picks the branch the author
meant (by discriminator such as ``executor``, by type, then by key overlap) and explains
only that branch, instead of "is not valid under any of the given schemas".
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from runspec.manifest.document import Document, KeyPath, format_path
from runspec.manifest.errors import Diagnostic
from runspec.manifest.schema_validator import Validator
from runspec.manifest.suggest import assignment, closest, did_you_mean, literal, one_of

_JSON_TYPES = {
    "object": "a table", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "true or false", "null": "null",
}
SECRET_SEGMENT = "secrets"
SECRET_KEYS = frozenset({"client_secret", "password"})
"""Keys whose value is a credential wherever they appear: never shown in a diagnostic."""


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def describe(value: Any, secret: bool = False) -> str:
    """``string "abc"``, ``integer 3``, ``a table`` — never a secret's value."""
    kind = json_type(value)
    if secret or kind in ("object", "array", "null"):
        return _JSON_TYPES[kind] if not secret else f"{_JSON_TYPES[kind]} (value hidden)"
    shown = json.dumps(value)
    if len(shown) > 40:
        shown = shown[:37] + "…" + shown[-1]
    return f"{kind} {shown}"


@cache
def validator_for(kind: str, ref: str | None = None) -> Validator:
    """A cached Draft 2020-12 validator for a schema (``run``/``env``) or one of its ``$defs``."""
    from runspec.manifest import schema as schemas

    schema = schemas.load(kind)
    if ref is not None:
        schema = {"$defs": schema.get("$defs", {}), "$ref": f"#/$defs/{ref}"}
    return Validator(schema)


class Explainer:
    """Explains the errors of one instance (at ``base`` inside ``document``) against ``root``."""

    def __init__(self, document: Document, root: dict[str, Any], base: KeyPath = ()):
        self.document = document
        self.root = root
        self.base = base

    def explain_all(self, errors) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        for error in errors:
            out.extend(self.explain(error))
        return out

    # -- helpers ---------------------------------------------------------------------------
    def deref(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.root["$defs"][name]
        return schema

    @staticmethod
    def is_secret(path: KeyPath) -> bool:
        """A secret's value lives at ``…secrets.NAME`` or at a key that holds a credential
        (``client_secret``); ``from_env`` is only a variable name."""
        if path and path[-1] == "from_env":
            return False
        return SECRET_SEGMENT in path or any(key in SECRET_KEYS for key in path)

    def elsewhere(self, key: str) -> str | None:
        """A close match for ``key`` in another section (``gpus`` → resources.gpus_per_node)."""
        for section, definition in _sections(json.dumps(self.root, sort_keys=True)).items():
            match = closest(key, self.root["$defs"][definition].get("properties", {}), cutoff=0.7)
            if match is not None:
                return f'did you mean {section}.{match}? (it belongs in another table)'
        return None

    def path_of(self, error) -> KeyPath:
        return self.base + tuple(error.absolute_path)

    def diag(self, path: KeyPath, message: str, hint: str | None = None, on_value: bool = True
             ) -> Diagnostic:
        position = (self.document.value_position(path) if on_value
                    else self.document.key_position(path))
        diagnostic = Diagnostic.at(position, format_path(path), message, hint, self.document)
        if self.is_secret(path) and diagnostic.source is not None:
            diagnostic = diagnostic.redacted()
        return diagnostic

    # -- one error -------------------------------------------------------------------------
    def explain(self, error) -> list[Diagnostic]:
        kind = error.validator
        path = self.path_of(error)
        instance = error.instance
        schema = error.schema
        secret = self.is_secret(path)
        fmt = self.document.notation
        if list(error.relative_schema_path)[-2:-1] == ["propertyNames"]:
            return self.explain_name(error, path)
        if kind == "not" and set(error.validator_value) - {"type"} == {"pattern"} \
                and isinstance(instance, str):
            if "pattern" in schema and not re.search(schema["pattern"], instance):
                return []  # not in the expected form at all: that error says it
            found = re.search(error.validator_value["pattern"], instance)
            return [self.diag(path, "must be one line, without control characters: it contains "
                              + _character(found.group() if found else ""),
                              "it is written into a line of the job script")]
        if kind == "additionalProperties":
            properties = schema.get("properties", {})
            out = []
            for key in instance:
                if key in properties:
                    continue
                hint: str | None = did_you_mean(key, properties) or self.elsewhere(key) or (
                    f"expected one of {one_of(sorted(properties))}" if properties else
                    "this table takes no keys")
                out.append(self.diag(path + (key,), "unknown key", hint, on_value=False))
            return out
        if kind == "required":
            out = []
            for key in error.validator_value:
                if isinstance(instance, dict) and key not in instance:
                    prop = self.deref(schema.get("properties", {}).get(key, {}))
                    example = (prop.get("examples") or [None])[0]
                    hint = f"for example {assignment(fmt, key, example)}" if example is not None \
                        else None
                    missing = self.diag(path + (key,), "required key is missing", hint,
                                        on_value=False)
                    # At the top level there is no line to show: the key is simply absent.
                    out.append(missing.without_source() if not path else missing)
            return out
        if kind in ("oneOf", "anyOf"):
            return self.explain_union(error, path)
        if kind == "type":
            expected = error.validator_value
            names = [expected] if isinstance(expected, str) else list(expected)
            wanted = " or ".join(_JSON_TYPES.get(n, n) for n in names)
            hint = None
            if secret and isinstance(instance, str):
                reference = assignment(fmt, str(path[-1]), {"from_env": str(path[-1])})
                return [self.diag(path, "a secret must be a reference, not a value",
                                  f"write {reference} and export the value in the launching "
                                  "environment")]
            if "integer" in names and isinstance(instance, float) and instance.is_integer():
                hint = f"write {int(instance)}"
            elif isinstance(instance, str) and names[0] in ("integer", "number", "boolean"):
                hint = _unquoted(fmt, str(path[-1]) if path else "", instance, names[0])
            return [self.diag(path, f"expected {wanted}, got {describe(instance, secret)}", hint)]
        if kind == "enum":
            allowed = error.validator_value
            hint = (did_you_mean(instance, [str(a) for a in allowed])
                    or _shortened(instance, allowed)) if isinstance(instance, str) else None
            return [self.diag(path, f"expected {one_of(allowed)}, got {describe(instance, secret)}", hint)]
        if kind == "const":
            expected = error.validator_value
            return [self.diag(path, f"expected {json.dumps(expected)}, got {describe(instance, secret)}")]
        if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            symbol = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤",
                      "exclusiveMaximum": "<"}[kind]
            return [self.diag(path, f"must be {symbol} {error.validator_value}, got {instance}")]
        if kind == "pattern":
            examples = schema.get("examples") or []
            form = schema.get("description", "").rstrip(".")
            example = ("for example " + " or ".join(literal(fmt, e) for e in examples)) if examples else ""
            hint = "; ".join(p for p in (form, example) if p) or f"pattern {error.validator_value}"
            return [self.diag(path, f"{describe(instance, secret)} is not in the expected form", hint)]
        if kind in ("minItems", "maxItems"):
            bound = error.validator_value
            word = "at least" if kind == "minItems" else "at most"
            return [self.diag(path, f"expected {word} {bound} item{'s' * (bound != 1)}, "
                                    f"got {len(instance)}")]
        if kind in ("minLength", "minProperties"):
            return [self.diag(path, "must not be empty")]
        return [self.diag(path, error.message if not secret else f"invalid value ({kind})")]

    def explain_name(self, error, path: KeyPath) -> list[Diagnostic]:
        """A key that becomes a name in a script (``propertyNames``): the environment variable
        ``A=1 $(touch X)``, the sbatch option ``output`` runspec writes itself."""
        key, schema = error.instance, error.schema
        noun, rendered = schema.get("x-name"), schema.get("x-rendered", {})
        fits = Validator({k: v for k, v in schema.items() if k != "not"}).is_valid
        # What the author probably meant: "--mail-type" → "mail-type", "MY-VAR" → "MY_VAR".
        meant = next((c for c in _respellings(key) if fits(c) and not _CONTROL.search(c)), None)
        if key in rendered or meant in rendered:
            name = key if key in rendered else meant
            message, hint = f"runspec writes --{name} itself", rendered[name]
        elif noun is None:
            message = "must be one line, without control characters"
            hint = "it is written into a line of the job script"
        else:
            message = f"not a valid {noun}"
            hint = schema.get("description") or f"pattern {schema.get('pattern')}"
            if meant is not None and meant != key:
                hint = f'did you mean "{meant}"? ({hint})'
        shown = format_path(path + ("".join(c if c.isprintable() else repr(c)[1:-1]
                                            for c in key),))
        position = self.document.key_position(path + (key,))
        diagnostic = Diagnostic.at(position, shown, message, hint, self.document)
        return [diagnostic.redacted() if self.is_secret(path + (key,)) else diagnostic]

    # -- unions ----------------------------------------------------------------------------
    def explain_union(self, error, path: KeyPath) -> list[Diagnostic]:
        branches = [self.deref(b) for b in error.validator_value]
        instance = error.instance
        chosen = self.choose_branch(branches, instance, path)
        if isinstance(chosen, list):  # already explained (e.g. a bad discriminator)
            return chosen
        sub = [e for e in (error.context or []) if e.relative_schema_path[0] == chosen]
        out = []
        for child in sub:
            out.extend(self.explain(child))
        return self.hint_other_branches(out, branches, chosen, path) if out else [
            self.diag(path, f"invalid value: {error.message}")]

    def choose_branch(self, branches: list[dict], instance: Any, path: KeyPath) -> int | list:
        # 1. a discriminator: a key that is ``const`` in several branches (e.g. executor).
        if isinstance(instance, dict):
            for key, consts in _discriminators(branches).items():
                if key in instance:
                    for index, const in consts.items():
                        if instance[key] == const:
                            return index
                    allowed = list(consts.values())
                    value = instance[key]
                    hint = did_you_mean(value, allowed) if isinstance(value, str) else None
                    return [self.diag(path + (key,), f"expected {one_of(allowed)}, "
                                      f"got {describe(value)}", hint)]
                without = [i for i, b in enumerate(branches) if key not in b.get("properties", {})]
                if without:
                    return without[0]
        # 2. by type.
        kind = json_type(instance)
        typed = [i for i, b in enumerate(branches) if _accepts_type(b, kind)]
        if not typed:
            wanted = " or ".join(dict.fromkeys(_branch_summary(b) for b in branches))
            return [self.diag(path, f"expected {wanted}, got {describe(instance)}")]
        if len(typed) == 1 or not isinstance(instance, dict):
            return typed[0]
        # 3. the branch that knows most of the given keys.
        def overlap(i: int) -> int:
            return len(set(instance) & set(branches[i].get("properties", {})))
        return max(typed, key=overlap)

    def hint_other_branches(self, diagnostics: list[Diagnostic], branches: list[dict], chosen: int,
                            path: KeyPath) -> list[Diagnostic]:
        """An unknown key that another branch accepts: say which one (e.g. a slurm-only key)."""
        discriminators = _discriminators(branches)
        if not discriminators:
            return diagnostics
        key, consts = next(iter(discriminators.items()))
        current = consts.get(chosen)
        result = []
        for d in diagnostics:
            name = d.path.rsplit(".", 1)[-1].strip('"')
            owners = [consts[i] for i, b in enumerate(branches)
                      if i in consts and name in b.get("properties", {})]
            if d.message == "unknown key" and d.path == format_path(path + (name,)) and owners:
                hint = (f'"{name}" is a setting of {key} {one_of(owners)}, '
                        + (f'not of {key} "{current}"' if current else f"set {key} to use it"))
                d = Diagnostic(d.file, d.line, d.col, d.path, d.message, hint, d.severity,
                               d.length, d.source)
            result.append(d)
        return result


@cache
def _sections(root_json: str) -> dict[str, str]:
    """Dotted section path → $defs name, for the sections two levels below the root."""
    root = json.loads(root_json)
    found: dict[str, str] = {}
    frontier = [("", root)]
    for _ in range(2):
        following = []
        for prefix, node in frontier:
            for key, spec in node.get("properties", {}).items():
                ref = spec.get("$ref", "")
                name = ref.rsplit("/", 1)[-1]
                if name and name not in found.values():
                    found[f"{prefix}{key}"] = name
                    following.append((f"{prefix}{key}.", root["$defs"][name]))
        frontier = following
    return found


_TRUE, _FALSE = {"yes", "y", "true", "on", "1"}, {"no", "n", "false", "off", "0"}


def _unquoted(fmt: str, key: str, text: str, wanted: str) -> str | None:
    """What to write instead of a quoted number or boolean: the value itself, unquoted, in
    the file's own notation (``energy = "yes"`` → ``write energy = true``)."""
    value: Any = None
    if wanted == "boolean":
        word = text.strip().lower()
        value = True if word in _TRUE else False if word in _FALSE else None
        if value is None:
            return "write true or false, without quotes"
    else:
        try:
            value = int(text) if wanted == "integer" else float(text)
        except ValueError:
            return None
    return f"write {assignment(fmt, key, value)}" if key else "remove the quotes"


def _shortened(text: str, allowed: list[Any]) -> str | None:
    """``"minimize"`` for ``"min"``: a choice the value starts with (or that starts with it)."""
    word = text.strip().lower()
    found = [a for a in allowed if isinstance(a, str) and a and
             (word.startswith(a.lower()) or a.lower().startswith(word)) and word]
    return f'did you mean "{found[0]}"?' if len(found) == 1 else None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CHARACTERS = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}


def _character(char: str) -> str:
    return _CHARACTERS.get(char) or f"the control character {char!r}"


def _respellings(key: str) -> list[str]:
    """Spellings of ``key`` from other conventions: without option dashes, other case or
    separators (the first one a name's pattern accepts is suggested)."""
    bare = key.strip().lstrip("-")
    forms = [bare]
    for source, target in (("_", "-"), ("-", "_"), (".", "_"), (" ", "_")):
        forms.append(bare.replace(source, target))
    forms += [f.lower() for f in forms] + [f.upper() for f in forms]
    return list(dict.fromkeys(forms))


def _discriminators(branches: list[dict]) -> dict[str, dict[int, Any]]:
    found: dict[str, dict[int, Any]] = {}
    for index, branch in enumerate(branches):
        for key, prop in branch.get("properties", {}).items():
            if "const" in prop:
                found.setdefault(key, {})[index] = prop["const"]
    return {k: v for k, v in found.items() if len(v) >= 2}


def _accepts_type(branch: dict, kind: str) -> bool:
    declared = branch.get("type")
    if declared is None:
        return True
    names = [declared] if isinstance(declared, str) else declared
    return kind in names or (kind == "integer" and "number" in names)


def _branch_summary(branch: dict) -> str:
    if "const" in branch:
        return json.dumps(branch["const"])
    declared = branch.get("type")
    if declared == "object" and branch.get("required"):
        return f"a table with {one_of(branch['required'])}"
    return _JSON_TYPES.get(declared, "a value") if isinstance(declared, str) else "a value"
