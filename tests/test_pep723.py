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


def test_an_unknown_launch_runs_directly_with_a_warning_at_its_line(tmp_path):
    """Nemotron accepts any launch (its recipes use "python"): runspec runs it as direct,
    and says so at the line."""
    from runspec.manifest.pep723 import script_launch

    script = tmp_path / "rl.py"
    script.write_text(HEADER.format(launch="python"))
    spec = read_script_spec(script, display="rl.py")
    launch = script_launch(spec)
    assert (launch.launch, launch.command) == ("direct", "uv run python {script} --config {config}")
    d = spec.diagnostic(("run", "launch"), launch.note, severity="warning")
    assert d.headline == ('rl.py:11:12: warning: tool.runspec.run.launch: rl.py: run.launch = '
                          '"python" is not a launch runspec knows; it runs as "direct" (the '
                          'script, or its run.cmd, in one process)')
    assert d.source == '# launch = "python"'


@pytest.mark.parametrize("line, message", [
    ('# gpus_per_node = "all"', 'expected an integer or "gpu", got string "all"'),
    ('# gpus_per_node = true', "expected an integer or a string, got boolean true"),
])
def test_gpus_per_node_is_a_count_or_gpu(tmp_path, line, message):
    script = tmp_path / "s.py"
    script.write_text(HEADER.format(launch="torchrun").replace("# gpus_per_node = 8", line))
    with pytest.raises(ManifestError) as caught:
        read_script_spec(script, display="s.py")
    assert caught.value.diagnostics[0].message == message


def test_a_run_cmd_that_str_format_cannot_fill_is_an_error(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(HEADER.format(launch="ray").replace(
        "--config {config}", "--config {config} {nodes}"))
    with pytest.raises(ManifestError) as caught:
        read_script_spec(script, display="s.py")
    (d,) = caught.value.diagnostics
    assert d.path == "tool.runspec.run.cmd"
    assert d.message == "run.cmd is formatted with {script} and {config} only: 'nodes'"


def test_a_missing_launch_is_torchrun_as_in_nemotron(tmp_path):
    from runspec.manifest.pep723 import script_launch

    script = tmp_path / "s.py"
    script.write_text('# /// script\n# [tool.runspec]\n# name = "x"\n# ///\n')
    assert script_launch(read_script_spec(script)).launch == "torchrun"


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
