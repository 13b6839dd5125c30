"""Property: any document — random keys, types and nesting — yields diagnostics, never a traceback."""

from __future__ import annotations

import json

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runspec.manifest.validate import validate_file

KNOWN = ["schema", "name", "recipe", "script", "module", "env", "executor", "profile", "sweep",
         "parameters", "mode", "values", "range", "distribution", "stages", "needs", "campaign",
         "measure", "secrets", "from_env", "resources", "nodes", "include", "exclude", "extends"]
keys = st.one_of(st.sampled_from(KNOWN), st.text(min_size=1, max_size=8))
scalars = st.one_of(st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans(), st.text(max_size=10), st.sampled_from(["runspec/v1", "grid",
                                                                          "slurm", "train.py"]))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)
tables = st.dictionaries(keys, documents, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=tables)
def test_random_toml_documents_never_crash(tmp_path_factory, data):
    directory = tmp_path_factory.mktemp("prop")
    path = directory / "run.toml"
    try:
        path.write_text(tomlkit.dumps(data))
    except Exception:  # not representable as TOML (e.g. mixed arrays of tables)
        return
    diagnostics = validate_file(path)
    for d in diagnostics:
        assert d.line >= 1 and d.col >= 1 and d.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=tables)
def test_random_yaml_documents_never_crash(tmp_path_factory, data):
    directory = tmp_path_factory.mktemp("prop")
    path = directory / "run.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    diagnostics = validate_file(path)
    assert isinstance(diagnostics, list)
    for d in diagnostics:
        assert d.line >= 1 and d.col >= 1 and d.message


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_never_crashes(tmp_path_factory, text):
    directory = tmp_path_factory.mktemp("text")
    for name in ("run.toml", "run.yaml"):
        path = directory / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        assert isinstance(validate_file(path), list)
