"""A recipe tree in Nemotron's layout (fixtures/nemotron_tree, written for these tests), fed
through minimal manifests (``recipe.script`` and a profile): runspec must do what Nemotron
does with the script's ``[tool.runspec]`` block and the config's ``run:`` section, or
refuse at validate, at the line that asks.

Rendered files are snapshot-tested with the temporary root written as ``<root>``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, chdir, invoke

from runspec.plan.pipeline import make_plan

TREE = FIXTURES / "nemotron_tree"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(TREE, root)
    return root


def portable(text: str, root: Path) -> str:
    for form in sorted({str(root.resolve()), str(root)}, key=len, reverse=True):
        text = text.replace(form, "<root>")
    return text


def rendered(root: Path, manifest: str) -> dict[str, str]:
    with chdir(root):
        result = make_plan(manifest)
    files = {f"{run.run_dir}/{name}": text
             for run in result.plan.runs for name, text in run.files.items()}
    files.update({f"{launch.directory}/{name}": text
                  for launch in result.launches for name, text in launch.files.items()})
    return {path: portable(text, root) for path, text in sorted(files.items())}


def validate(root: Path, manifest: str):
    return invoke("validate", manifest, cwd=root)


@pytest.mark.parametrize("manifest", ["pretrain-cluster.toml", "prep-cluster.toml",
                                      "report-cluster.toml", "report-local.toml",
                                      "eval-local.toml"])
def test_minimal_manifests_validate_and_render_as_nemotron_would(tree, manifest, snapshot):
    result = validate(tree, manifest)
    assert result.exit_code == 0, result.output
    assert rendered(tree, manifest) == snapshot


def file_of(files: dict[str, str], name: str) -> str:
    (text,) = [t for p, t in files.items() if p.endswith("/" + name)]
    return text


def test_script_defaults_and_the_run_section_are_honoured(tree):
    files = rendered(tree, "pretrain-cluster.toml")
    sbatch, launch = file_of(files, "job.sbatch"), file_of(files, "launch.sh")
    config = file_of(files, "config.yaml")
    # torchrun (Nemotron's default launch), one process per GPU of the script's 8, 2 nodes
    assert ("torchrun --nproc_per_node=8 src/recipes/pretrain/train.py --config "
            "runs/pretrain/main/default/c1/config.yaml") in launch
    assert "#SBATCH --nodes=2" in sbatch and "#SBATCH --gpus-per-node=8" in sbatch
    # run.env.container_image wins over the script's image; run.env mounts + the profile's
    assert "--container-image=nvcr.io/nvidia/nemo:26.02" in sbatch
    assert "--container-mounts=/datasets:/datasets,/lustre:/lustre," in sbatch
    # [tool.runspec.env] and run.env.env_vars are exported
    assert "export NCCL_DEBUG=WARN" in launch and "export TOKENIZERS_PARALLELISM=false" in launch
    # the manifest sits at the project root (beside pyproject.toml): runs start there
    assert "cd .\n" in launch
    # ${run.wandb.*} from env.toml [wandb]; the run: section keeps only its artifact
    # reference, which the recipe resolves with its ${art:…} values
    assert "wandb_project: tree-project" in config and "wandb_entity: my-team" in config
    assert 'per_split_data_args_path: "${art:data,path}/blend.json"' in config
    assert config.rstrip().endswith('run:\n  data: "tree-pretrain-data:latest"')
    assert "container_image" not in config
    assert "${oc.env:PWD}/output/pretrain" in config  # for the recipe, from its PWD


def test_run_cmd_json_config_and_ray_launch(tree):
    files = rendered(tree, "prep-cluster.toml")
    launch, sbatch = file_of(files, "launch.sh"), file_of(files, "job.sbatch")
    config_path = [p for p in files if p.endswith("/config.json")]
    assert config_path, sorted(files)
    config = json.loads(files[config_path[0]])
    assert config == {"input": {"path": "${oc.env:PWD}/data/raw", "shards": 4},
                      "output": {"name": "tree-pretrain-data"}}
    assert ("-- uv run --extra xenna python src/recipes/prep/data_prep.py --config "
            "runs/prep/main/default/c1/config.json\n") in launch
    assert "ray start" in sbatch  # a Ray cluster in the allocation, in the script's image
    assert sbatch.count("--container-image=anyscale/ray:2.49.2-py312") >= 3


def test_a_pinned_run_section_artifact_is_resolved_by_runspec(tree, artifact_registry):
    from runspec.artifacts.registry import Registry

    data = tree / "data-v1"
    data.mkdir()
    (data / "blend.json").write_text("{}")
    Registry(artifact_registry).publish("tree-pretrain-data", data, "dataset",
                                        extra={"pack_size": 4096})
    files = rendered(tree, "pretrain-cluster.toml")
    config = file_of(files, "config.yaml")
    assert f"per_split_data_args_path: {data.resolve()}/blend.json" in \
        config.replace("<root>", str(tree.resolve()))
    assert "seq_length: 4096" in config
    assert 'data: "tree-pretrain-data:v1"' in config
    result = validate(tree, "pretrain-cluster.toml")
    assert result.exit_code == 0 and "warning" not in result.output, result.output


def test_what_runspec_does_differently_is_a_warning_at_the_script_line(tree):
    result = validate(tree, "report-local.toml")
    assert result.exit_code == 0
    assert ('src/recipes/tools/report.py:7:12: warning: tool.runspec.run.launch: '
            'report.py: run.launch = "python" is not a launch runspec knows; it runs as '
            '"direct"') in result.output
    plan = invoke("plan", "report-local.toml", cwd=tree)
    assert 'run.launch = "python"' in plan.stderr and plan.exit_code == 0
    result = validate(tree, "pretrain-cluster.toml")
    assert "src/recipes/pretrain/config/default.yaml:2:9: warning: run.data:" in result.output
    assert "the recipe resolves them when it starts" in result.output


@pytest.mark.parametrize("manifest, where, message", [
    ("pretrain-local.toml", "src/recipes/pretrain/train.py:12:11: error: "
     "tool.runspec.resources.nodes:", "the local executor starts one process group"),
    ("prep-local.toml", "src/recipes/prep/data_prep.py:8:12: error: tool.runspec.run.launch:",
     'the local executor cannot start launch = "ray"'),
    ("eval-cluster.toml", "src/recipes/tools/eval.py:11:19: error: "
     "tool.runspec.resources.gpus_per_node:", "allocates GPUs by count"),
])
def test_what_a_backend_cannot_do_is_refused_at_the_script_line(tree, manifest, where, message):
    result = validate(tree, manifest)
    assert result.exit_code == 1
    assert where in result.output and message in result.output, result.output


def test_run_env_settings_runspec_cannot_apply_are_refused(tree):
    config = tree / "src/recipes/pretrain/config/default.yaml"
    text = config.read_text()
    config.write_text(text.replace(
        "      - /datasets:/datasets\n",
        "      - ${auto_mount:git+https://example.com/x.git@main,/opt/x}\n").replace(
        "  env:\n", "  env:\n    sandbox:\n      image: x\n"))
    result = validate(tree, "pretrain-cluster.toml")
    assert result.exit_code == 1
    assert "default.yaml:4:5: error: run.env.sandbox:" in result.output
    assert "default.yaml:8:9: error: run.env.mounts[0]: ${auto_mount:…} clones" in result.output
    manifest = tree / "pretrain-cluster.toml"
    manifest.write_text(manifest.read_text() + '[recipe.overrides]\n"run.env.sandbox" = {}\n'
                        '"run.env.mounts" = ["/src/x:/opt/x"]\n')
    result = validate(tree, "pretrain-cluster.toml")
    assert result.exit_code == 0, result.output
    assert "--container-mounts=/src/x:/opt/x,/lustre:/lustre," in \
        file_of(rendered(tree, "pretrain-cluster.toml"), "job.sbatch")


def test_env_file_is_found_as_nemotron_finds_it(tree, monkeypatch):
    other = tree / "elsewhere.toml"
    other.write_text('[wandb]\nentity = "e"\nproject = "p"\n[cluster]\nexecutor = "slurm"\npartition = "other"\n')
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(other))
    sbatch = file_of(rendered(tree, "report-cluster.toml"), "job.sbatch")
    assert "#SBATCH --partition=other" in sbatch


def test_a_nemotron_style_tool_runs_from_the_project_root(tree):
    """Really run it: run.cmd as written, JSON config, the script's env, cwd and PWD (the
    project root, where the manifest is)."""
    result = invoke("apply", "--yes", "report-local.toml", cwd=tree)
    assert result.exit_code == 0, result.output
    seen = json.loads((tree / "runs/report/main/default/c1/seen.json").read_text())
    assert seen["config"] == {"rows": 3, "title": "my-team/tree-project"}
    assert Path(seen["cwd"]) == tree.resolve() and Path(seen["pwd"]) == tree.resolve()
    assert seen["mode"] == "full"


def test_a_manifest_away_from_the_project_root_still_runs_the_recipe_there(tree):
    """Nemotron starts recipes from the project root, where ${oc.env:PWD} points, wherever
    the launch came from; so does runspec, and every path it hands the recipe (its config,
    its run directory) is rebased to that working directory."""
    (tree / "manifests").mkdir()
    (tree / "manifests/report.toml").write_text(
        (tree / "report-local.toml").read_text().replace('"src/', '"../src/'))
    assert "project root" not in validate(tree / "manifests", "report.toml").output
    result = invoke("apply", "--yes", "report.toml", cwd=tree / "manifests")
    assert result.exit_code == 0, result.output
    run_dir = tree / "manifests/runs/report/main/default/c1"
    seen = json.loads((run_dir / "seen.json").read_text())
    assert Path(seen["cwd"]) == tree.resolve() and Path(seen["pwd"]) == tree.resolve()
    assert seen["config"]["rows"] == 3
    job = (run_dir / "job.yaml").read_text()
    assert 'cwd: ".."' in job
    assert '"--config", manifests/runs/report/main/default/c1/config.json]' in job


def test_variable_names_from_the_script_or_run_env_must_be_shell_names(tree):
    script = tree / "src/recipes/pretrain/train.py"
    script.write_text(script.read_text().replace('# NCCL_DEBUG = "WARN"',
                                                 '# "A=1 $(touch X)" = "WARN"'))
    config = tree / "src/recipes/pretrain/config/default.yaml"
    config.write_text(config.read_text().replace('TOKENIZERS_PARALLELISM: "false"',
                                                 '"B;touch X": "false"'))
    result = validate(tree, "pretrain-cluster.toml")
    assert result.exit_code == 1
    assert "'A=1 $(touch X)' is not an environment variable name" in result.output
    script.write_text(script.read_text().replace('# "A=1 $(touch X)" = "WARN"',
                                                 '# NCCL_DEBUG = "WARN"'))
    result = validate(tree, "pretrain-cluster.toml")
    assert "run.env.env_vars" in result.output and "'B;touch X' is not an environment " \
        "variable name" in result.output, result.output


def test_a_moved_project_root_is_a_change_even_on_the_unchanged_fast_path(tree):
    """Where the recipe starts is derived from the pyproject.toml files above the script,
    which no manifest names: a new one moves the working directory, and apply sees it."""
    assert invoke("apply", "--yes", "report-local.toml", cwd=tree).exit_code == 0
    assert "No changes" in invoke("apply", "--yes", "report-local.toml", cwd=tree).output
    (tree / "src/pyproject.toml").write_text("")
    again = invoke("apply", "--yes", "report-local.toml", cwd=tree)
    assert again.exit_code == 0, again.output
    assert "1 to replace" in again.output


def test_a_wandb_uri_in_the_run_section_is_an_error_not_left_to_the_recipe(tree):
    """Nemotron's own references (NAME:latest) stay the recipe's, with a warning; runspec's
    wandb:// URI syntax would reach it as a literal path, so the plan refuses it."""
    config = tree / "src/recipes/pretrain/config/default.yaml"
    config.write_text(config.read_text().replace(
        "tree-pretrain-data:latest", "wandb://team/proj/tree-pretrain-data:latest"))
    result = validate(tree, "pretrain-cluster.toml")
    assert result.exit_code == 1
    assert ('src/recipes/pretrain/config/default.yaml:2:9: error: run.data: '
            '"wandb://team/proj/tree-pretrain-data:latest" is a W&B artifact URI, which runspec '
            "does not resolve: the recipe would get it as text — download it once, `runspec "
            "artifacts publish data PATH`") in result.output, result.output
