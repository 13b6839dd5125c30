"""Loading: positions for every key and value, duplicate keys, and files that are not manifests."""

from __future__ import annotations

import pytest
from conftest import invoke

from runspec.manifest.errors import ManifestError
from runspec.manifest.load import MAX_BYTES, load_document, load_manifest
from runspec.manifest.toml_positions import toml_positions

TOML = '''schema = "runspec/v1"
name = "x"  # comment
[recipe]
script = "train.py"
[sweep.parameters]
"optim.lr" = [1e-3,
   3e-4]
"model.n_layer" = { values = [2, 4] }
[[sweep.include]]
"optim.lr" = 1.0
[[sweep.include]]
a.b = """multi
line"""
'''


def test_toml_positions_cover_keys_values_arrays_and_inline_tables():
    pos = toml_positions(TOML, "f.toml")

    def at(path, which="key"):
        p = getattr(pos[path], which)
        return (p.line, p.col)

    assert at(("name",)) == (2, 1) and at(("name",), "value") == (2, 8)
    assert at(("recipe",)) == (3, 2)
    assert at(("recipe", "script"), "value") == (4, 10)
    assert at(("sweep", "parameters", "optim.lr", 1), "value") == (7, 4)
    assert at(("sweep", "parameters", "model.n_layer", "values")) == (8, 21)
    assert at(("sweep", "parameters", "model.n_layer", "values", 1), "value") == (8, 34)
    assert at(("sweep", "include", 1, "a", "b")) == (12, 3)
    assert at(("sweep", "include", 0, "optim.lr"), "value") == (10, 14)


def test_yaml_positions(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("schema: runspec/v1\nrecipe:\n  script: train.py\n  args: [a, b]\n")
    document = load_document(path)
    assert document.key_position(("recipe", "script")).line == 3
    assert document.value_position(("recipe", "script")).col == 11
    assert document.value_position(("recipe", "args", 1)).line == 4
    # a missing path falls back to its nearest ancestor
    assert document.key_position(("recipe", "nope", "deeper")).line == 2


@pytest.mark.parametrize("suffix,text", [
    (".toml", 'a = 1\nb = 2\na = 3\n'),
    (".yaml", "a: 1\nb: 2\na: 3\n"),
])
def test_duplicate_keys_are_errors(tmp_path, suffix, text):
    path = tmp_path / f"run{suffix}"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_document(path)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.message == 'duplicate key "a" (first set on line 1)'
    assert diagnostic.line == 3


def _validate(tmp_path, name: str, content: bytes | None):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    return invoke("validate", name, cwd=tmp_path)


@pytest.mark.parametrize("name,content,expected", [
    ("missing.toml", None, "missing.toml:1:1: error: (file): file not found"),
    ("empty.toml", b"", "empty.toml:1:1: error: (file): file is empty"),
    ("comments.yaml", b"# only a comment\n", "comments.yaml:1:1: error: (file): file is empty"),
    ("binary.toml", b"\x00\x01\x02schema", "binary.toml:1:1: error: (file): binary file"),
    ("latin1.toml", b'name = "caf\xe9"\n', "latin1.toml:1:1: error: (file): not valid UTF-8"),
    ("list.yaml", b"- a\n- b\n", "expected a table of settings at the top level, got a list"),
    ("notes.txt", b"hello", 'unsupported file type ".txt"'),
])
def test_bad_files_give_one_clear_error(tmp_path, name, content, expected):
    result = _validate(tmp_path, name, content)
    assert result.exit_code == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_ten_megabyte_file_is_refused_without_parsing(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_bytes(b'schema = "runspec/v1"\n' + b"# padding\n" * (1024 * 1024))
    assert path.stat().st_size > 10 * 1024 * 1024 > MAX_BYTES
    result = invoke("validate", "huge.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert "file is too large for a manifest (10.5 MB > 2.1 MB)" in result.stderr


def test_unreadable_file_with_injected_permission_error(tmp_path, monkeypatch):
    """Root reads any file, so a fake (named as such) injects the EACCES a user would get."""
    import os

    path = tmp_path / "run.toml"
    path.write_text('schema = "runspec/v1"\n')
    real_open = os.open

    def fake_permission_denied(name, *args, **kwargs):
        if str(name).endswith("run.toml"):
            raise PermissionError(13, "Permission denied")
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_permission_denied)
    result = invoke("validate", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert "run.toml:1:1: error: (file): permission denied: cannot read the file" in result.stderr


def test_directory_named_like_a_manifest(tmp_path):
    (tmp_path / "odd.toml").mkdir()
    result = invoke("validate", "odd.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert "no manifests found" in result.stderr


def test_extends_cycle_is_reported(tmp_path, monkeypatch):
    (tmp_path / "a.toml").write_text('schema = "runspec/v1"\nname = "a"\nextends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('schema = "runspec/v1"\nname = "b"\nextends = "a.toml"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "a.toml")
    assert "extends cycle: a.toml → b.toml → a.toml" in caught.value.diagnostics[0].message
