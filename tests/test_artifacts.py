"""Artifacts: URIs, the registry (versions, aliases, concurrent publishing), plan-time
pinning, ${art:…} in configs, outputs registered with lineage by a real 2-stage pipeline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import invoke

from runspec.artifacts.registry import Registry
from runspec.artifacts.uri import ArtifactError, parse


def test_uris():
    ref = parse("art://tiny-shakespeare:v3/train.txt")
    assert (ref.scheme, ref.name, ref.version, ref.alias, ref.subpath) == (
        "art", "tiny-shakespeare", 3, None, "train.txt")
    assert parse("art://data").alias == "latest"
    assert parse("art://data:best").alias == "best"
    assert parse("file:///data/x").path == "/data/x" and parse("data/x").scheme == "file"
    wandb = parse("wandb://team/proj/data:v2")
    assert (wandb.entity, wandb.project, wandb.name, wandb.alias) == ("team", "proj", "data", "v2")
    for bad in ("art://", "art://:v1", "art://a b", "s3://bucket/x", "wandb://x"):
        with pytest.raises(ArtifactError):
            parse(bad)


def test_publish_resolve_and_alias(tmp_path):
    registry = Registry(tmp_path / "reg")
    source = tmp_path / "data"
    source.mkdir()
    (source / "a.txt").write_text("one")
    first = registry.publish("ds", source, "dataset", producer="m/prep/default/c1")
    (source / "a.txt").write_text("two")
    second = registry.publish("ds", source, "dataset")
    assert (first.number, second.number) == (1, 2)
    assert first.metadata["digest"] != second.metadata["digest"]
    assert registry.resolve(parse("art://ds")).number == 2
    registry.set_alias("ds", "best", 1)
    assert registry.resolve(parse("art://ds:best")).number == 1
    with pytest.raises(ArtifactError) as caught:
        registry.resolve(parse("art://ds:v9"))
    assert caught.value.hint == "versions: v1, v2; aliases: best → v1, latest → v2"
    with pytest.raises(ArtifactError, match='no artifact "dsx"') as caught:
        registry.resolve(parse("art://dsx"))
    assert caught.value.hint == 'did you mean "ds"?'


CONCURRENT = """
import sys
from pathlib import Path
from runspec.artifacts.registry import Registry
registry = Registry(sys.argv[1])
for i in range(50):
    registry.publish("shared", Path(sys.argv[2]), "dataset", producer=f"{sys.argv[3]}-{i}")
"""


def test_two_processes_publishing_50_versions_each_lose_none(tmp_path):
    (tmp_path / "f").write_text("x")
    root = tmp_path / "reg"
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(root), str(tmp_path / "f"),
                               name]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    registry = Registry(root)
    assert registry.versions("shared") == list(range(1, 101))
    producers = {registry.get("shared", n).metadata["producer"] for n in range(1, 101)}
    assert len(producers) == 100
    assert registry.aliases("shared")["latest"] in range(1, 101)


def test_unwritable_registry_root_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    registry = Registry(tmp_path / "file" / "reg")
    (tmp_path / "d").mkdir()
    with pytest.raises(ArtifactError, match="cannot write the artifact registry"):
        registry.publish("x", tmp_path / "d", "dataset")


PREP = textwrap.dedent('''\
    schema = "runspec/v1"
    name = "prep"
    [recipe]
    command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + '/shard.txt', 'w').write('tokens')", "${run.dir}/shards"]
    [outputs.artifacts.shards]
    path = "${run.dir}/shards"
    type = "dataset"
    ''')

TRAIN = textwrap.dedent('''\
    schema = "runspec/v1"
    name = "train"
    [recipe]
    command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + '/model.pt', 'w').write(open(sys.argv[2]).read())", "${run.dir}/ckpt", "${art:data,path}/shard.txt"]
    [artifacts.data]
    uri = "art://shards:latest"
    [outputs.artifacts.model]
    path = "${run.dir}/ckpt"
    type = "model"
    ''')


def test_published_outputs_are_consumed_pinned_and_traced(tmp_path, artifact_registry):
    """prep publishes a dataset; train consumes art://shards:latest, publishes a model whose
    lineage names both runs; a new shards version then replaces train, with the reason."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "prep.toml").write_text(PREP)
    (tmp_path / "train.toml").write_text(TRAIN)
    first = invoke("apply", "--yes", "prep.toml", cwd=tmp_path)
    assert first.exit_code == 0, first.output
    assert "registered shards:v1 from prep/main/default/c1" in first.stderr
    second = invoke("apply", "--yes", "train.toml", cwd=tmp_path)
    assert second.exit_code == 0, second.output
    assert "registered model:v1 from train/main/default/c1" in second.stderr
    registry = Registry(artifact_registry)
    model = registry.resolve(parse("art://model"))
    assert model.metadata["inputs"] == {"data": "shards:v1"}
    assert Path(model.path, "model.pt").read_text() == "tokens"
    root = ["artifacts", "--root", str(artifact_registry)]
    tree = invoke(*root, "lineage", "model", cwd=tmp_path)
    assert tree.stdout == ("model:v1  [model] produced by train/main/default/c1\n"
                           "└── shards:v1  [dataset] produced by prep/main/default/c1\n")
    listing = invoke(*root, "list", cwd=tmp_path)
    assert "model  (model) versions v1…v1 [1]  aliases: latest → v1" in listing.stdout
    shown = invoke(*root, "show", "shards:v1", cwd=tmp_path)
    assert '"producer": "prep/main/default/c1"' in shown.stdout
    missing = invoke(*root, "show", "shards:v7", cwd=tmp_path)
    assert missing.exit_code == 1 and "versions: v1; aliases: latest → v1" in missing.stderr
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "shard.txt").write_text("more tokens")
    registry.publish("shards", tmp_path / "other", "dataset")
    plan = invoke("plan", "train.toml", cwd=tmp_path)
    assert "-/+ train/main/default/c1" in plan.stdout
    assert "# input data: v1 → v2" in plan.stdout


def test_a_missing_output_fails_the_run_with_the_reason(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "noout"
        [recipe]
        command = ["true"]
        [outputs.artifacts.ckpt]
        path = "${run.dir}/ckpt"
        '''))
    result = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert ("noout/main/default/c1: output ckpt is missing: runs/noout/main/default/c1/ckpt was not written"
            in result.stdout)


def test_unknown_artifact_and_malformed_uri_are_plan_errors(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "bad"
        [recipe]
        command = ["echo", "${art:data,path}"]
        [artifacts.data]
        uri = "art://nothing:v2"
        [artifacts.broken]
        uri = "art://"
        '''))
    result = invoke("plan", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert 'run.toml:6:7: error: artifacts.data.uri: no artifact "nothing" in the registry' in result.stderr
    assert 'run.toml:8:7: error: artifacts.broken.uri: malformed artifact URI "art://"' in result.stderr
    (tmp_path / "remote.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "remote"
        [recipe]
        command = ["true"]
        [artifacts.remote]
        uri = "wandb://team/proj/data:v3"
        bind = "data"
        '''))
    remote = invoke("plan", "remote.toml", cwd=tmp_path)
    assert remote.exit_code == 1
    assert ('remote.toml:6:7: error: artifacts.remote.uri: "wandb://team/proj/data:v3" cannot be '
            'resolved at plan time — runspec pins inputs from its own registry: download it '
            'once, `runspec artifacts publish NAME PATH`') in remote.stderr


def test_art_interpolation_in_a_rendered_config(tmp_path, artifact_registry, text_snapshot):
    (tmp_path / "pyproject.toml").write_text("")
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "x.txt").write_text("abc")
    Registry(artifact_registry).publish("corpus", data, "dataset", producer="by-hand")
    (tmp_path / "config.yaml").write_text(
        "data:\n  path: null\n  blend: ${art:corpus,path}/blend.json\n  version: ${art:corpus,version}\n"
        "  kind: ${art:corpus,type}\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "art"
        [recipe]
        script = "train.py"
        config = "config.yaml"
        [artifacts.corpus]
        uri = "art://corpus:latest"
        bind = "data.path"
        '''))
    result = invoke("render", "run.toml", "--out", "out", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    config = (tmp_path / "out/runs/art/main/default/c1/config.yaml").read_text()
    assert config.replace(str(data.resolve()), "<corpus>") == text_snapshot


def test_consuming_a_stage_output_without_needing_the_stage_is_an_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "order"
        [stages.prep.recipe]
        command = ["true"]
        [stages.prep.outputs.artifacts.data]
        path = "${run.dir}/data"
        [stages.train.recipe]
        command = ["echo", "${stage.prep.outputs.data}"]
        '''))
    result = invoke("plan", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert ('stage "train" consumes ${stage.prep.outputs.data} from stage "prep" but does not '
            'need it, so they could run in parallel — add "prep" to stages.train.needs'
            in result.stderr)
    fixed = (tmp_path / "run.toml").read_text().replace("[stages.train.recipe]",
                                                        '[stages.train]\nneeds = ["prep"]\n'
                                                        "[stages.train.recipe]")
    (tmp_path / "run.toml").write_text(fixed)
    planned = invoke("plan", "run.toml", cwd=tmp_path)
    assert planned.exit_code == 0, planned.output


def test_a_stage_consuming_a_sweeping_stage_fans_out_one_run_per_upstream_run(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "fan"
        [stages.prep.recipe]
        command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + '/v', 'w').write(sys.argv[2])", "${run.dir}/data", "${sweep.v}"]
        [stages.prep.sweep.parameters]
        v = ["x", "y"]
        [stages.prep.outputs.artifacts.data]
        path = "${run.dir}/data"
        [stages.train]
        needs = ["prep"]
        [stages.train.recipe]
        command = ["python", "-c", "import sys; print('read', open(sys.argv[1]).read())", "${stage.prep.outputs.data}/v"]
        '''))
    plan = invoke("plan", "run.toml", cwd=tmp_path)
    assert "+ fan/train/stage.prep=v=x@c1/c1" in plan.stdout
    assert "+ fan/train/stage.prep=v=y@c1/c1" in plan.stdout
    result = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    for value in ("x", "y"):
        log = tmp_path / f"runs/fan/train/stage.prep=v={value}@c1/c1/stdout.log"
        assert log.read_text() == f"read {value}\n"


def test_select_consumes_the_best_upstream_run_once_its_results_exist(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "sel"
        [stages.prep.recipe]
        command = ["python", "-c", "import json, os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + '/v', 'w').write(sys.argv[2]); open(os.environ['RUNSPEC_METRICS'], 'a').write(json.dumps({'loss': float(sys.argv[2])}) + '\\\\n')", "${run.dir}/data", "${sweep.v}"]
        [stages.prep.sweep.parameters]
        v = [3, 1, 2]
        [stages.prep.outputs.artifacts.data]
        path = "${run.dir}/data"
        [stages.train]
        needs = ["prep"]
        [stages.train.recipe]
        command = ["python", "-c", "import sys; print('read', open(sys.argv[1]).read())", "${art:data,path}/v"]
        [stages.train.artifacts.data]
        uri = "${stage.prep.outputs.data}"
        select = { metric = "loss", goal = "min" }
        '''))
    plan = invoke("plan", "run.toml", cwd=tmp_path)
    assert ("Stage train: planned later — it waits for the results of stage prep to pick the "
            "run with the min loss") in plan.stdout
    result = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "planning train now that its inputs exist" in result.stderr
    (log,) = tmp_path.glob("runs/sel/train/*/c1/stdout.log")
    assert log.read_text() == "read 1\n"  # the run with the smallest loss
    assert "stage.prep=v=1@c1" in str(log)
    again = invoke("plan", "run.toml", cwd=tmp_path)
    assert "No changes." in again.stdout


def test_artifacts_publish_command(tmp_path):
    (tmp_path / "text.txt").write_text("to be or not to be\n")
    published = invoke("artifacts", "--root", "reg", "publish", "text", "text.txt",
                       "--type", "dataset", "--alias", "gold", cwd=tmp_path)
    assert published.exit_code == 0, published.output
    assert published.stdout == f"published text:v1 (dataset) → {tmp_path / 'text.txt'}\n"
    version = Registry(tmp_path / "reg").resolve(parse("art://text:gold"))
    assert (version.number, version.metadata["type"]) == (1, "dataset")
    bad = invoke("artifacts", "--root", "reg", "publish", "a b", "text.txt", cwd=tmp_path)
    assert bad.exit_code == 1 and '"a b" is not an artifact name' in bad.stderr
    missing = invoke("artifacts", "--root", "reg", "publish", "x", "nope.txt", cwd=tmp_path)
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
