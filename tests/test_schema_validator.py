"""validate's own schema validator finds exactly the errors jsonschema finds (with integers
strict), with the same paths, messages and union contexts, so every explanation is the same."""

from __future__ import annotations

import copy
import operator
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.validators import extend

from runspec.manifest import schema as schemas
from runspec.manifest.errors import ManifestError
from runspec.manifest.explain import validator_for
from runspec.manifest.load import load_document
from runspec.manifest.schema_validator import Validator

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(p for base in ("tests/fixtures", "examples") for p in (ROOT / base).rglob("*")
                   if p.suffix in (".toml", ".yaml", ".yml") and p.is_file())


def _reference(schema):
    """jsonschema's Draft 2020-12 validator, with an integer that must be an int."""
    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))
    return extend(Draft202012Validator, type_checker=checker)(schema)


def _key(error) -> tuple:
    return (error.validator, repr(error.validator_value), tuple(error.absolute_path),
            tuple(error.absolute_schema_path), tuple(error.relative_schema_path), error.message,
            repr(error.instance), sorted(_key(child) for child in error.context or []))


def _same_errors(kind: str, instance, ref: str | None = None) -> tuple[list, list]:
    theirs = _reference(validator_for(kind, ref).schema).iter_errors(instance)
    ours = validator_for(kind, ref).iter_errors(instance)
    return sorted(map(_key, ours)), sorted(map(_key, theirs))


@cache
def _data(path: Path):
    """The document's data, or None where the loader refuses it (nothing to validate)."""
    try:
        return load_document(path).data
    except ManifestError:
        return None


@pytest.mark.parametrize("kind", ["run", "env"])
def test_every_fixture_gives_jsonschemas_errors(kind):
    checked = [p for p in DOCUMENTS if _data(p) is not None]
    differ = [str(p.relative_to(ROOT)) for p in checked
              if operator.ne(*_same_errors(kind, _data(p)))]
    assert len(checked) > 100 and not differ


def test_the_fixtures_exercise_most_keywords():
    """The comparison above means something only if the fixtures break many keywords."""
    seen = {e.validator for p in DOCUMENTS if _data(p) is not None for kind in ("run", "env")
            for error in validator_for(kind).iter_errors(_data(p))
            for e in [error, *error.context]}
    assert {"additionalProperties", "required", "type", "enum", "const", "pattern", "minimum",
            "maximum", "anyOf", "oneOf", "not"} <= seen


@pytest.mark.parametrize("suffix,kind", [("Env", "run"), ("Profile", "env")])
def test_each_executors_definition_gives_jsonschemas_errors(suffix, kind):
    from runspec.backends import REGISTRY, backend_for

    table = {"executor": "slurm", "partition": 3, "nodes": 0, "env_vars": {"A B": 1},
             "mem": "16 G", "container_image": "x\ny", "tunnel": {"kind": "ssh"}, "bogus": True}
    for executor in REGISTRY:
        ref = backend_for(executor).title + suffix
        ours, theirs = _same_errors(kind, {**table, "executor": executor}, ref)
        assert ours == theirs and ours, executor


VALID = [load_document(ROOT / "tests/fixtures/valid" / name).data
         for name in ("stages.toml", "env-inline.toml", "sweep-random.toml", "resources.toml")]
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=False),
              st.text(max_size=6), st.sampled_from(["slurm", "grid", "16G", "00:10:00", "a\nb"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


def _places(node, at=()):
    yield at
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, at + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _places(value, at + (index,))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), which=st.integers(0, len(VALID) - 1), value=values,
       extra=st.booleans())
def test_a_mangled_manifest_gives_jsonschemas_errors(data, which, value, extra):
    document = copy.deepcopy(VALID[which])
    places = [p for p in _places(document) if p]
    at = data.draw(st.sampled_from(places))
    node = document
    for part in at[:-1]:
        node = node[part]
    if extra and isinstance(node, dict):
        node[data.draw(st.text(min_size=1, max_size=6))] = value
    else:
        node[at[-1]] = value
    ours, theirs = _same_errors("run", document)
    assert ours == theirs


def test_an_integer_must_be_one():
    validator = Validator({"type": "integer", "minimum": 1})
    assert validator.is_valid(3)
    assert [e.message for e in validator.iter_errors(2.0)] == ["2.0 is not of type 'integer'"]
    assert not validator.is_valid(True)


def test_a_keyword_it_does_not_implement_is_refused():
    with pytest.raises(ValueError, match="'format' is not supported"):
        Validator({"properties": {"when": {"type": "string", "format": "date"}}})


def test_the_checked_in_schemas_use_only_what_it_implements():
    for kind in schemas.SCHEMA_FILES:
        Validator(schemas.load(kind))
