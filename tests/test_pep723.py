"""A recipe script's PEP 723 [tool.runspec] block (Nemotron's v1), read and checked."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from runspec.manifest.errors import ManifestError
from runspec.manifest.pep723 import read_script_spec

HEADER = '''#!/usr/bin/env python3
# /// script
# [tool.runspec]
# schema = "1"
# name = "nano3/rl"
# setup = """
# nemo-rl is pre-installed.
# """
#
# [tool.runspec.run]
# launch = "{launch}"
# cmd = "uv run python {{script}} --config {{config}}"
# workdir = "/opt/nemo-rl"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 8
# ///
print("hi")
'''


def test_reads_nemotron_block(tmp_path):
    script = tmp_path / "rl.py"
    script.write_text(HEADER.format(launch="ray"))
    spec = read_script_spec(script)
    assert spec.get("run", "launch") == "ray"
    assert spec.get("resources", "gpus_per_node") == 8
    assert spec.get("config", "dir", default="./config") == "./config"


def test_fixture_script_block():
    spec = read_script_spec(FIXTURES / "valid" / "train.py")
    assert spec.get("name") == "fixtures/train"


def test_invalid_launch_is_an_error_with_position(tmp_path):
    script = tmp_path / "rl.py"
    script.write_text(HEADER.format(launch="python"))
    with pytest.raises(ManifestError) as caught:
        read_script_spec(script, display="rl.py")
    (d,) = caught.value.diagnostics
    assert d.headline == ('rl.py:11:12: error: tool.runspec.run.launch: expected "direct", '
                          '"torchrun" or "ray", got string "python" — did you mean "direct"? '
                          '("direct" runs the script with python)')
    assert d.source == '# launch = "python"'


def test_unknown_key_gets_did_you_mean(tmp_path):
    script = tmp_path / "s.py"
    script.write_text('# /// script\n# [tool.runspec]\n# imgae = "x"\n# ///\n')
    with pytest.raises(ManifestError) as caught:
        read_script_spec(script, display="s.py")
    assert caught.value.diagnostics[0].hint == 'did you mean "image"?'


def test_script_without_block_or_tool_table(tmp_path):
    plain = tmp_path / "plain.py"
    plain.write_text("print(1)\n")
    assert read_script_spec(plain).data == {}
    other = tmp_path / "deps.py"
    other.write_text('# /// script\n# dependencies = ["numpy"]\n# ///\n')
    assert read_script_spec(other).data == {}
