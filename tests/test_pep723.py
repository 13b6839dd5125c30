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


def test_a_config_chosen_from_the_scripts_config_dir_is_merged_over_its_default(tmp_path):
    """Nemotron's pipeline: default.yaml ← the chosen config (-c tiny) ← overrides."""
    from runspec.plan.resolve import resolve

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "config").mkdir()
    (tmp_path / "config/default.yaml").write_text("train:\n  iters: 5000\n  seed: 7\nlr: 0.1\n")
    (tmp_path / "config/tiny.yaml").write_text("train:\n  iters: 20\n")
    (tmp_path / "other.yaml").write_text("train:\n  iters: 1\n")
    (tmp_path / "train.py").write_text(
        '# /// script\n# [tool.runspec]\n# schema = "1"\n# [tool.runspec.config]\n'
        '# dir = "./config"\n# default = "default"\n# ///\nprint(1)\n')
    manifest = tmp_path / "run.toml"
    for chosen, expected in (("config/tiny.yaml", {"train": {"iters": 20, "seed": 7}, "lr": 0.1}),
                             ("config/default.yaml", {"train": {"iters": 5000, "seed": 7}, "lr": 0.1}),
                             ("other.yaml", {"train": {"iters": 1}})):  # outside config.dir: alone
        manifest.write_text(f'schema = "runspec/v1"\nname = "m"\n[recipe]\nscript = "train.py"\n'
                            f'config = "{chosen}"\n')
        (stage,) = resolve(manifest).stages
        assert stage.base_config == expected, chosen
