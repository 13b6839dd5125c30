"""Artifacts: URIs, the registry (immutable versions: copied or referenced and checked,
aliases, best, concurrent publishing, where it lives), plan-time pinning, ${art:…} in
configs, outputs registered with lineage by real pipelines, and cascades to consumers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import invoke

from runspec.artifacts.digest import Scheme, changes, digest_of, scan
from runspec.artifacts.registry import BestBy, Mode, Registry
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
from runspec.artifacts.registry import Mode, Registry
registry = Registry(sys.argv[1])
sys.stdin.readline()  # both processes start publishing together
for i in range(50):
    registry.publish("shared", Path(sys.argv[2]), "dataset", producer=f"{sys.argv[3]}-{i}",
                     aliases=("latest", f"{sys.argv[3]}-{i}"), mode=Mode.COPY)
"""


def test_two_processes_publishing_50_versions_each_lose_none(tmp_path):
    """Real processes, one name, one content (so also one object, copied concurrently):
    100 distinct versions, every alias kept, latest on the last."""
    (tmp_path / "f").write_text("x")
    root = tmp_path / "reg"
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(root), str(tmp_path / "f"),
                               name], stdin=subprocess.PIPE) for name in ("a", "b")]
    for proc in procs:
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    registry = Registry(root)
    assert registry.versions("shared") == list(range(1, 101))
    by_producer = {registry.get("shared", n).metadata["producer"]: n for n in range(1, 101)}
    assert sorted(by_producer) == sorted(f"{p}-{i}" for p in "ab" for i in range(50))
    aliases = registry.aliases("shared")
    assert {a: n for a, n in aliases.items() if a != "latest"} == by_producer  # none lost
    assert aliases["latest"] == 100
    for proc in "ab":  # each process's versions in the order it published them
        numbers = [by_producer[f"{proc}-{i}"] for i in range(50)]
        assert numbers == sorted(numbers)
    assert len({registry.get("shared", n).path for n in range(1, 101)}) == 1  # stored once
    assert not list((root / ".objects" / ".incoming").iterdir())


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


WANDB_REFUSED = ('remote.toml:6:7: error: artifacts.remote.uri: "wandb://team/proj/data:v3" is a '
                 "W&B artifact, which runspec cannot resolve: inputs are pinned from runspec's "
                 "own registry, without reaching W&B — download it once (wandb artifact get "
                 "team/proj/data:v3), `runspec artifacts publish data PATH`, then "
                 '`uri = "art://data"`')


@pytest.mark.parametrize("consumed", ['bind = "data"', ""])
def test_a_wandb_input_is_refused_at_validate_and_plan(tmp_path, consumed):
    """Bound into the config or only read through ${art:remote,path}: validate (and so plan
    and apply) refuse it, and the literal URI never reaches the recipe."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "remote.toml").write_text(textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "remote"
        [recipe]
        command = ["echo", "${{art:remote,path}}"]
        [artifacts.remote]
        uri = "wandb://team/proj/data:v3"
        {consumed}
        '''))
    for command in ("validate", "plan", "apply"):
        result = invoke(command, "remote.toml", *(["--yes"] if command == "apply" else []),
                        cwd=tmp_path)
        assert result.exit_code == 1, (command, result.output)
        assert WANDB_REFUSED in result.stderr, (command, result.stderr)
    assert not (tmp_path / "runs").exists()


def test_a_literal_reference_in_a_rendered_config_is_a_plan_error(tmp_path):
    """An override or a config value that is a wandb:// URI would reach the recipe as text:
    the plan names where it was written."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "config.yaml").write_text("data:\n  path: null\n  extra: wandb://t/p/x:v1\n")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "leak"
        [recipe]
        script = "train.py"
        config = "config.yaml"
        [recipe.overrides]
        "data.path" = "wandb://team/proj/data:v3"
        '''))
    result = invoke("plan", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert ('run.toml:7:15: error: recipe.overrides."data.path": "wandb://team/proj/data:v3" is '
            "a W&B artifact URI, which runspec does not resolve: the recipe would get it as text"
            " — download it once, `runspec artifacts publish NAME PATH`") in result.stderr
    (tmp_path / "run.toml").write_text((tmp_path / "run.toml").read_text().replace(
        '"wandb://team/proj/data:v3"', '"data.txt"'))
    result = invoke("plan", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert ('config.yaml:3:10: error: data.extra: "wandb://t/p/x:v1" is a W&B artifact URI'
            in result.stderr), result.stderr
    (tmp_path / "config.yaml").write_text("data:\n  path: null\n  extra: 1\n")
    assert invoke("plan", "run.toml", cwd=tmp_path).exit_code == 0


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
    version = Registry(tmp_path / "reg").resolve(parse("art://text:gold"))
    assert published.stdout == f"published text:v1 (dataset, copied) → {version.path}\n"
    assert (version.number, version.metadata["type"]) == (1, "dataset")
    assert Path(version.path).read_text() == "to be or not to be\n"
    assert Path(version.path).is_relative_to(tmp_path / "reg" / ".objects")
    referenced = invoke("artifacts", "--root", "reg", "publish", "text", "text.txt",
                        "--mode", "reference", cwd=tmp_path)
    assert referenced.stdout == f"published text:v2 (artifact, referenced) → {tmp_path / 'text.txt'}\n"
    bad = invoke("artifacts", "--root", "reg", "publish", "a b", "text.txt", cwd=tmp_path)
    assert bad.exit_code == 1 and '"a b" is not an artifact name' in bad.stderr
    missing = invoke("artifacts", "--root", "reg", "publish", "x", "nope.txt", cwd=tmp_path)
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


# -- immutable versions -----------------------------------------------------------------


def test_a_copied_version_keeps_its_bytes_when_the_source_is_rewritten(tmp_path):
    registry = Registry(tmp_path / "reg")
    source = tmp_path / "data"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("one")
    (source / "sub" / "b.txt").write_text("two")
    first = registry.publish("ds", source, "dataset", mode=Mode.AUTO)  # small: copied
    again = registry.publish("ds", source, "dataset", mode=Mode.COPY)
    assert first.metadata["mode"] == "copy" and first.metadata["digest"].startswith("sha256:")
    assert first.metadata["digest"] == digest_of(source) == again.metadata["digest"]
    assert again.path == first.path != str(source)  # content-addressed: stored once
    (source / "a.txt").write_text("ONE!")
    assert Path(first.path, "a.txt").read_text() == "one"
    assert registry.drift(first) == []
    assert registry.drift(first, of="source") == ["a.txt changed (3 → 4 bytes)"]
    assert not Path(first.path, "sub", "b.txt").stat().st_mode & 0o222  # read-only copies


def test_a_referenced_version_reports_which_file_changed(tmp_path):
    registry = Registry(tmp_path / "reg")
    source = tmp_path / "data"
    source.mkdir()
    (source / "a.txt").write_text("one")
    (source / "b.txt").write_text("two")
    version = registry.publish("ds", source, "dataset", mode=Mode.REFERENCE)
    assert version.path == str(source.resolve())
    assert registry.drift(version) == []
    os.utime(source / "b.txt", ns=(1, 1))  # touched, same bytes: re-hashed, unchanged
    assert registry.drift(version) == []
    (source / "a.txt").write_text("uno")  # same size, new bytes
    (source / "b.txt").unlink()
    (source / "c.txt").write_text("new")
    assert registry.drift(version) == ["b.txt was removed", "c.txt was added", "a.txt changed"]


def test_the_sampled_digest_of_a_large_tree_detects_a_rewrite(tmp_path):
    big = tmp_path / "ckpt"
    big.mkdir()
    (big / "shard.bin").write_bytes(os.urandom(2**20))
    tree = scan(big, Scheme.SAMPLED)
    assert tree.digest.startswith("sampled:") and changes(big, tree) == []
    data = bytearray((big / "shard.bin").read_bytes())
    data[2**19] ^= 0xFF  # one byte in the middle window, same size
    (big / "shard.bin").write_bytes(bytes(data))
    assert changes(big, tree) == ["shard.bin changed"]
    assert scan(big, Scheme.SAMPLED).digest != tree.digest


PRODUCE = textwrap.dedent('''\
    schema = "runspec/v1"
    name = "produce"
    [recipe]
    command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1], exist_ok=True); open(sys.argv[1] + '/shard.txt', 'w').write('tokens')", "${run.dir}/shards"]
    [outputs.artifacts.shards]
    path = "${run.dir}/shards"
    type = "dataset"
    mode = "MODE"
    ''')

CONSUME = textwrap.dedent('''\
    schema = "runspec/v1"
    name = "consume"
    [recipe]
    command = ["python", "-c", "import sys; print(open(sys.argv[1]).read())", "${art:data,path}/shard.txt"]
    [artifacts.data]
    uri = "art://shards:latest"
    ''')


def test_rewriting_a_referenced_output_makes_the_consumers_plan_fail(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "produce.toml").write_text(PRODUCE.replace("MODE", "reference"))
    (tmp_path / "consume.toml").write_text(CONSUME)
    assert invoke("apply", "--yes", "produce.toml", cwd=tmp_path).exit_code == 0
    assert invoke("plan", "consume.toml", cwd=tmp_path).exit_code == 0
    (tmp_path / "runs/produce/main/default/c1/shards/shard.txt").write_text("other tokens")
    plan = invoke("plan", "consume.toml", cwd=tmp_path)
    assert plan.exit_code == 1
    assert ("consume.toml:6:7: error: artifacts.data.uri: shards:v1 no longer matches what "
            "was registered: shard.txt changed (6 → 12 bytes) — shards:v1 references "
            f"{tmp_path / 'runs/produce/main/default/c1/shards'} in place and a version never "
            "changes") in plan.stderr
    assert "Traceback" not in plan.output


def test_a_copied_output_is_consumed_as_registered_whatever_happens_to_the_run_dir(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "produce.toml").write_text(PRODUCE.replace("MODE", "copy"))
    (tmp_path / "consume.toml").write_text(CONSUME)
    assert invoke("apply", "--yes", "produce.toml", cwd=tmp_path).exit_code == 0
    (tmp_path / "runs/produce/main/default/c1/shards/shard.txt").write_text("other tokens")
    applied = invoke("apply", "--yes", "consume.toml", cwd=tmp_path)
    assert applied.exit_code == 0, applied.output
    assert (tmp_path / "runs/consume/main/default/c1/stdout.log").read_text() == "tokens\n"


# -- cascades ---------------------------------------------------------------------------

PIPE = textwrap.dedent('''\
    schema = "runspec/v1"
    name = "pipe"
    [stages.prep.recipe]
    command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1], exist_ok=True); n = len(os.listdir(os.environ['RUNSPEC_RUN_DIR'])); open(sys.argv[1] + '/shard.txt', 'w').write(str(n))", "${run.dir}/ds"]
    [stages.prep.outputs.artifacts.ds]
    path = "${run.dir}/ds"
    type = "dataset"
    [stages.train]
    needs = ["prep"]
    [stages.train.recipe]
    command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[2], exist_ok=True); open(sys.argv[2] + '/m', 'w').write(open(sys.argv[1]).read())", "${stage.prep.outputs.ds}/shard.txt", "${run.dir}/model"]
    [stages.train.outputs.artifacts.model]
    path = "${run.dir}/model"
    type = "model"
    ''')


def test_rerunning_prep_replaces_the_train_runs_consuming_its_output(tmp_path, artifact_registry):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(PIPE)
    first = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert first.exit_code == 0, first.output
    assert "registered model:v1 from pipe/train/default/c1" in first.stderr
    assert "No changes." in invoke("plan", "run.toml", cwd=tmp_path).stdout
    assert "No changes." in invoke("apply", "--yes", "run.toml", cwd=tmp_path).stdout
    again = invoke("apply", "--yes", "--replace", "pipe/prep/*", "run.toml", cwd=tmp_path)
    assert again.exit_code == 0, again.output
    assert "registered ds:v2 from pipe/prep/default/c1" in again.stderr
    plan = invoke("plan", "run.toml", cwd=tmp_path)
    assert "-/+ pipe/train/default/c1" in plan.stdout
    assert "# input ds: v1 → v2" in plan.stdout
    assert "= pipe/prep/default/c1" in invoke("plan", "--show-unchanged", "run.toml",
                                               cwd=tmp_path).stdout
    cascaded = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert cascaded.exit_code == 0, cascaded.output
    assert "registered model:v2 from pipe/train/default/c1" in cascaded.stderr
    assert "No changes." in invoke("plan", "run.toml", cwd=tmp_path).stdout
    registry = Registry(artifact_registry)
    assert registry.get("model", 2).metadata["inputs"] == {"ds": "ds:v2"}
    trained = registry.get("model", 2).path
    assert Path(trained, "m").read_text() != Path(registry.get("model", 1).path, "m").read_text()
    # prep's directory rewritten by hand: train reads it, so it is replanned, saying what
    (tmp_path / "runs/pipe/prep/default/c1/ds/shard.txt").write_text("edited")
    edited = invoke("plan", "run.toml", cwd=tmp_path)
    assert "# input ds: content changed" in edited.stdout
    assert 'changed: ["shard.txt changed' in edited.stdout


def test_a_moved_alias_replaces_the_consumers_of_another_manifest(tmp_path, artifact_registry):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "produce.toml").write_text(PRODUCE.replace("MODE", "copy"))
    (tmp_path / "consume.toml").write_text(CONSUME)
    assert invoke("apply", "--yes", "produce.toml", cwd=tmp_path).exit_code == 0
    assert invoke("apply", "--yes", "consume.toml", cwd=tmp_path).exit_code == 0
    assert "No changes." in invoke("apply", "--yes", "consume.toml", cwd=tmp_path).stdout
    replaced = invoke("apply", "--yes", "--replace", "produce/*", "produce.toml", cwd=tmp_path)
    assert "registered shards:v2" in replaced.stderr
    applied = invoke("apply", "--yes", "consume.toml", cwd=tmp_path)
    assert applied.exit_code == 0, applied.output
    assert "-/+ consume/main/default/c1" in applied.stdout
    assert "# input data: v1 → v2" in applied.stdout


# -- where the registry lives -------------------------------------------------------------

MODEL = textwrap.dedent('''\
    schema = "runspec/v1"
    name = "tiny"
    [recipe]
    command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1], exist_ok=True); open(sys.argv[1] + '/w', 'w').write('w')", "${run.dir}/ckpt"]
    [outputs.artifacts.tiny-gpt-model]
    path = "${run.dir}/ckpt"
    type = "model"
    ''')


def test_a_fresh_clones_first_run_registers_v1(tmp_path, monkeypatch):
    """The registry is the project's: another project's 12 versions of the same name on
    this machine (or in the old per-user place) do not number this one's."""
    monkeypatch.delenv("RUNSPEC_ARTIFACTS")
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    elsewhere = tmp_path / "other-project"
    (elsewhere / "x").mkdir(parents=True)
    for registry in (Registry(home / ".runspec/artifacts"), Registry(elsewhere / ".runspec/artifacts")):
        for _ in range(12):
            registry.publish("tiny-gpt-model", elsewhere / "x", "model")
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    (clone / "examples").mkdir()
    (clone / "examples/run.toml").write_text(MODEL)
    applied = invoke("apply", "--yes", "run.toml", cwd=clone / "examples")
    assert applied.exit_code == 0, applied.output
    assert "registered tiny-gpt-model:v1 from tiny/main/default/c1" in applied.stderr
    assert Registry(clone / ".runspec/artifacts").versions("tiny-gpt-model") == [1]  # git root
    listed = invoke("artifacts", "list", cwd=clone / "examples")
    assert f"Artifacts in {clone / '.runspec/artifacts'}:" in listed.stdout
    assert "tiny-gpt-model  (model) versions v1…v1 [1]" in listed.stdout
    # beside env.toml when there is one; else in the manifest's directory
    (clone / "examples/env.toml").write_text('[local]\nexecutor = "local"\n')
    assert "registered tiny-gpt-model:v1" in invoke(
        "apply", "--yes", "--replace", "*", "run.toml", cwd=clone / "examples").stderr
    assert Registry(clone / "examples/.runspec/artifacts").versions("tiny-gpt-model") == [1]
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "run.toml").write_text(MODEL)
    assert invoke("apply", "--yes", "run.toml", cwd=alone).exit_code == 0
    assert Registry(alone / ".runspec/artifacts").versions("tiny-gpt-model") == [1]
    shown = invoke("artifacts", "-C", str(alone), "list", cwd=tmp_path)
    assert f"Artifacts in {alone / '.runspec/artifacts'}:" in shown.stdout


def test_a_shared_root_at_a_file_url(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNSPEC_ARTIFACTS")
    shared = tmp_path / "shared"
    project = tmp_path / "project"
    project.mkdir()
    (project / "env.toml").write_text(f'[artifacts]\nroot = "{shared.as_uri()}"\n')
    (project / "run.toml").write_text(MODEL)
    applied = invoke("apply", "--yes", "run.toml", cwd=project)
    assert applied.exit_code == 0, applied.output
    assert Registry(shared).versions("tiny-gpt-model") == [1]
    assert not (project / "file:").exists() and not (project / ".runspec/artifacts").exists()
    assert f"Artifacts in {shared}:" in invoke("artifacts", "list", cwd=project).stdout
    # a relative root is relative to env.toml, wherever runspec is started
    (project / "env.toml").write_text('[artifacts]\nroot = "../team"\n')
    assert invoke("apply", "--yes", "--replace", "*", "project/run.toml",
                  cwd=tmp_path).exit_code == 0
    assert Registry(tmp_path / "team").versions("tiny-gpt-model") == [1]


def test_a_shared_root_at_a_memory_url(tmp_path, monkeypatch):
    """Any fsspec filesystem: memory:// lives in this process, as the CLI runs here."""
    monkeypatch.delenv("RUNSPEC_ARTIFACTS")
    url = f"memory://runspec-test-{tmp_path.name}"
    project = tmp_path / "project"
    project.mkdir()
    (project / "env.toml").write_text(f'[artifacts]\nroot = "{url}"\n')
    (project / "run.toml").write_text(MODEL)
    (project / "use.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "use"
        [recipe]
        command = ["echo", "${art:m,path}"]
        [artifacts.m]
        uri = "art://tiny-gpt-model:latest"
        '''))
    applied = invoke("apply", "--yes", "run.toml", cwd=project)
    assert applied.exit_code == 0, applied.output
    assert "registered tiny-gpt-model:v1" in applied.stderr
    version = Registry(url).get("tiny-gpt-model", 1)
    assert version.path.startswith(f"memory:///runspec-test-{tmp_path.name}/.objects/")
    assert version.path.endswith("/ckpt")
    assert Registry(url).drift(version) == []
    import fsspec

    with fsspec.open(f"{version.path}/w") as handle:
        assert handle.read() == b"w"
    listed = invoke("artifacts", "list", cwd=project)
    assert "tiny-gpt-model  (model) versions v1…v1 [1]" in listed.stdout
    planned = invoke("plan", "--json", "use.toml", cwd=project)
    assert planned.exit_code == 0, planned.output
    assert f'"{version.path}"' in planned.stdout  # the consumer's argv names the copy
    fsspec.filesystem("memory").rm(version.path, recursive=True)
    broken = invoke("plan", "use.toml", cwd=project)
    assert broken.exit_code == 1 and "tiny-gpt-model:v1 no longer matches" in broken.stderr


def test_a_wandb_backend_is_refused_at_validate(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "env.toml").write_text('[artifacts]\nbackend = "wandb"\n')
    (tmp_path / "run.toml").write_text(MODEL)
    for target in ("run.toml", "env.toml", "."):
        result = invoke("validate", target, cwd=tmp_path)
        assert result.exit_code == 1, target
        assert ('env.toml:2:11: error: artifacts.backend: backend = "wandb" is not supported'
                in result.stderr), target
    planned = invoke("plan", "run.toml", cwd=tmp_path)
    assert planned.exit_code == 1 and 'backend = "wandb" is not supported' in planned.stderr
    (tmp_path / "env.toml").write_text('[artifacts]\nmode = "copie"\nroot = "s4://b/x"\n')
    typo = invoke("validate", "run.toml", cwd=tmp_path)
    assert 'artifacts.mode: mode "copie" is not an artifact mode — did you mean "copy"?' in typo.stderr
    assert 'artifacts.root: no fsspec filesystem reads "s4://" URLs — use a path' in typo.stderr
    (tmp_path / "env.toml").write_text('[artifacts]\nbackend = "file"\nmode = "reference"\n')
    assert invoke("validate", "run.toml", cwd=tmp_path).exit_code == 0


# -- lineage and aliases ------------------------------------------------------------------


def test_lineage_lists_a_plain_file_input_with_its_digest(tmp_path, artifact_registry):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/hamlet.txt").write_text("To be, or not to be\n")
    (tmp_path / "run.toml").write_text(MODEL + textwrap.dedent('''\
        [artifacts.text]
        uri = "data/hamlet.txt"
        [artifacts.corpus]
        uri = "art://corpus"
        '''))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("c")
    Registry(artifact_registry).publish("corpus", corpus, "dataset")
    assert invoke("apply", "--yes", "run.toml", cwd=tmp_path).exit_code == 0
    model = Registry(artifact_registry).get("tiny-gpt-model", 1)
    expected = digest_of(tmp_path / "data/hamlet.txt")
    assert model.metadata["inputs"] == {
        "corpus": "corpus:v1",
        "text": {"path": str((tmp_path / "data/hamlet.txt").resolve()), "digest": expected}}
    tree = invoke("artifacts", "lineage", "tiny-gpt-model", cwd=tmp_path)
    assert tree.stdout == (
        "tiny-gpt-model:v1  [model] produced by tiny/main/default/c1\n"
        "├── corpus:v1  [dataset] produced by hand\n"
        f"└── data/hamlet.txt  [path] sha256:{expected.removeprefix('sha256:')[:16]}\n")


def test_the_alias_command_moves_an_alias_and_the_plan_follows(tmp_path, artifact_registry):
    (tmp_path / "pyproject.toml").write_text("")
    registry = Registry(artifact_registry)
    for text in ("one", "two"):
        (tmp_path / "d.txt").write_text(text)
        registry.publish("ds", tmp_path / "d.txt", "dataset", mode=Mode.COPY)
    (tmp_path / "run.toml").write_text(CONSUME.replace("art://shards:latest", "art://ds:prod")
                                       .replace("/shard.txt", ""))
    missing = invoke("plan", "run.toml", cwd=tmp_path)
    assert 'artifact "ds" has no version or alias "prod"' in missing.stderr
    moved = invoke("artifacts", "alias", "ds:v1", "prod", cwd=tmp_path)
    assert moved.exit_code == 0, moved.output
    assert moved.stdout == "ds:prod → v1\n"
    assert invoke("apply", "--yes", "run.toml", cwd=tmp_path).exit_code == 0
    assert (tmp_path / "runs/consume/main/default/c1/stdout.log").read_text() == "one\n"
    assert invoke("artifacts", "alias", "ds:v2", "prod", cwd=tmp_path).stdout == \
        "ds:prod → v2 (was v1)\n"
    plan = invoke("plan", "run.toml", cwd=tmp_path)
    assert "# input data: v1 → v2" in plan.stdout
    assert registry.aliases("ds") == {"latest": 2, "prod": 2}
    for args, message in ((("ds:v9", "prod"), 'artifact "ds" has no version or alias "v9"'),
                          (("ds:v1", "v2"), '"v2" is not an alias name')):
        bad = invoke("artifacts", "alias", *args, cwd=tmp_path)
        assert bad.exit_code == 1 and message in bad.stderr


BEST_SWEEP = textwrap.dedent('''\
    schema = "runspec/v1"
    name = "bestof"
    [recipe]
    command = ["python", "-c", "import json, os, sys; os.makedirs(sys.argv[1]); open(os.environ['RUNSPEC_METRICS'], 'a').write(json.dumps({'loss': float(sys.argv[2])}) + '\\\\n')", "${run.dir}/ckpt", "${sweep.loss}"]
    [sweep.parameters]
    loss = LOSSES
    [outputs.artifacts.model]
    path = "${run.dir}/ckpt"
    type = "model"
    alias_best = { metric = "loss", goal = "min" }
    ''')


def test_alias_best_follows_the_best_metric_of_the_producing_runs(tmp_path, artifact_registry):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(BEST_SWEEP.replace("LOSSES", "[3.0, 1.0, 2.0]"))
    applied = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert applied.exit_code == 0, applied.output
    registry = Registry(artifact_registry)
    best = registry.resolve(parse("art://model:best"))
    assert best.metadata["producer"] == "bestof/main/loss=1.0/c1"
    assert best.metadata["metrics"]["loss"] == 1.0
    assert "registered model:v1 from bestof/main/loss=3.0/c1\nmodel:best → v1 (loss 3)\n" \
        in applied.stderr
    assert f"model:best → v{best.number} (loss 1)" in applied.stderr
    assert applied.stderr.count("model:best →") == 2  # the run with loss 2 came after 1
    (tmp_path / "run.toml").write_text(BEST_SWEEP.replace("LOSSES", "[3.0, 1.0, 2.0, 0.5, 4.0]"))
    assert invoke("apply", "--yes", "run.toml", cwd=tmp_path).exit_code == 0
    assert registry.resolve(parse("art://model:best")).metadata["producer"] == \
        "bestof/main/loss=0.5/c1"
    assert registry.aliases("model")["latest"] == 5


def test_alias_best_with_goal_max_and_runs_that_did_not_report(tmp_path):
    registry = Registry(tmp_path / "reg")
    (tmp_path / "f").write_text("x")
    by = BestBy("accuracy", "max")
    for value in (0.5, None, 0.9, 0.7):
        registry.publish("m", tmp_path / "f", "model", best=by,
                         metrics=None if value is None else {"accuracy": value})
    assert registry.aliases("m")["best"] == 3


def test_a_run_that_ended_after_apply_returned_is_registered_as_its_manifest_says(tmp_path):
    """A refresh (status, the next apply) registers without the resolved manifest at hand:
    the mode, alias_best and plain inputs come from the manifest the run's job.yaml names."""
    from conftest import state_members

    from runspec.artifacts.publish import register_outputs

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "data.txt").write_text("d")
    (tmp_path / "run.toml").write_text(BEST_SWEEP.replace("LOSSES", "[2.0]").replace(
        'type = "model"', 'type = "model"\nmode = "reference"') + '[artifacts.raw]\nuri = "data.txt"\n')
    assert invoke("apply", "--yes", "run.toml", cwd=tmp_path).exit_code == 0
    (member,) = state_members(tmp_path, "bestof").values()
    result = tmp_path / member.run_dir / "result.json"
    result.write_text(result.read_text().replace('"loss": 2.0', '"loss": 1.5'))
    member.registered = False
    assert register_outputs(member, tmp_path) == (["model:v2"], None)
    registry = Registry(member.registry)
    assert registry.aliases("model")["best"] == 2  # alias_best, from the manifest
    version = registry.get("model", 2)
    assert version.metadata["mode"] == "reference"
    assert version.path == str(tmp_path / "runs/bestof/main/loss=2.0/c1/ckpt")
    assert version.metadata["inputs"]["raw"]["digest"] == digest_of(tmp_path / "data.txt")


def test_env_toml_mode_is_the_projects_default_and_an_output_mode_wins(tmp_path,
                                                                       artifact_registry):
    (tmp_path / "env.toml").write_text('[artifacts]\nmode = "reference"\n')
    (tmp_path / "run.toml").write_text(MODEL.replace("tiny-gpt-model", "a") + textwrap.dedent('''\
        [outputs.artifacts.b]
        path = "${run.dir}/ckpt/w"
        mode = "copy"
        '''))
    assert invoke("apply", "--yes", "run.toml", cwd=tmp_path).exit_code == 0
    registry = Registry(artifact_registry)
    a, b = registry.get("a", 1), registry.get("b", 1)
    assert (a.metadata["mode"], a.path) == ("reference", str(tmp_path / "runs/tiny/main/default/c1/ckpt"))
    assert b.metadata["mode"] == "copy" and Path(b.path).is_relative_to(artifact_registry)
    (tmp_path / "env.toml").write_text('[local]\nexecutor = "local"\n')
    assert invoke("apply", "--yes", "--replace", "*", "run.toml", cwd=tmp_path).exit_code == 0
    assert registry.get("a", 2).metadata["mode"] == "copy"  # small: copied by default


# -- typed metadata -------------------------------------------------------------------------

PACK = textwrap.dedent('''\
    schema = "runspec/v1"
    name = "pack"
    [recipe]
    command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + '/train.npy', 'w').write('x'); open(sys.argv[1] + '.metadata.json', 'w').write(sys.argv[2])", "${run.dir}/packed", 'METADATA']
    [outputs.artifacts.packed]
    path = "${run.dir}/packed"
    type = "sft-packed"
    ''')

SFT = textwrap.dedent('''\
    schema = "runspec/v1"
    name = "sft"
    [recipe]
    command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + '/seen.txt', 'w').write(' '.join(sys.argv[2:]))", "${run.dir}/ckpt", "${art:data,pack_size}", "${art:data,type}", "${art:data,version}"]
    [artifacts.data]
    uri = "art://packed:latest"
    [outputs.artifacts.model]
    path = "${run.dir}/ckpt"
    ''')


def _pack(tmp_path: Path, metadata: str, type_: str = "sft-packed") -> str:
    (tmp_path / "pack.toml").write_text(PACK.replace("METADATA", metadata)
                                        .replace('"sft-packed"', f'"{type_}"'))
    return "pack.toml"


def test_metadata_beside_an_output_is_typed_and_read_by_art_field(tmp_path, artifact_registry):
    """A recipe writes <output>.metadata.json; registration checks it against sft-packed and
    keeps it apart from runspec's own fields; ${art:data,pack_size} reads it at plan time."""
    (tmp_path / "pyproject.toml").write_text("")
    metadata = '{"pack_size": 4096, "total_tokens": 12000, "total_sequences": 3, "note": "ok"}'
    first = invoke("apply", "--yes", _pack(tmp_path, metadata), cwd=tmp_path)
    assert first.exit_code == 0, first.output
    version = Registry(artifact_registry).resolve(parse("art://packed"))
    assert version.fields == {"pack_size": 4096, "total_tokens": 12000, "total_sequences": 3,
                              "note": "ok"}
    assert version.metadata["type"] == "sft-packed" and "pack_size" not in version.metadata
    (tmp_path / "sft.toml").write_text(SFT)
    second = invoke("apply", "--yes", "sft.toml", cwd=tmp_path)
    assert second.exit_code == 0, second.output
    assert (tmp_path / "runs/sft/main/default/c1/ckpt/seen.txt").read_text() == \
        "4096 sft-packed 1"
    (tmp_path / "sft.toml").write_text(SFT.replace("pack_size", "pack_sise"))
    plan = invoke("plan", "sft.toml", cwd=tmp_path)
    assert plan.exit_code == 1
    assert ('sft.toml:3:2: error: recipe: ${art:data,pack_sise}: packed:v1 has no field "pack_sise" '
            '— did you mean "pack_size"?') in plan.stderr


@pytest.mark.parametrize(("metadata", "type_", "why"), [
    ('{"pack_size": "big", "total_tokens": 1, "total_sequences": 1}', "sft-packed",
     'output packed: metadata field "pack_size" of type "sft-packed": expected an integer, '
     "got str 'big'"),
    ('{"total_tokens": 1, "total_sequences": 1}', "sft-packed",
     'output packed: type "sft-packed" needs metadata field "pack_size" (most tokens per '
     "packed sequence: integer ≥ 1)"),
    ('{"step": 10, "path": "/elsewhere"}', "checkpoint",
     'output packed: metadata field "path" is runspec\'s own (reserved: '),
    ('[1, 2]', "checkpoint", "packed.metadata.json must hold a JSON object (field: value), "
     "not list"),
])
def test_invalid_metadata_fails_the_run_naming_the_field(tmp_path, artifact_registry,
                                                         metadata, type_, why):
    (tmp_path / "pyproject.toml").write_text("")
    result = invoke("apply", "--yes", _pack(tmp_path, metadata, type_), cwd=tmp_path)
    assert result.exit_code == 1
    assert why in result.output, result.output
    assert Registry(artifact_registry).names() == []


def test_an_unknown_type_is_free_form(tmp_path, artifact_registry):
    (tmp_path / "pyproject.toml").write_text("")
    result = invoke("apply", "--yes", _pack(tmp_path, '{"pack_size": "any", "vocab": [1]}',
                                            "tokenizer"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    version = Registry(artifact_registry).resolve(parse("art://packed"))
    assert version.fields == {"pack_size": "any", "vocab": [1]}


def test_the_type_registry_is_documented():
    from runspec.artifacts.types import describe

    docs = (Path(__file__).parents[1] / "docs" / "artifacts.md").read_text(encoding="utf-8")
    assert describe() in docs


# -- the Python API -------------------------------------------------------------------------

API_PREP = textwrap.dedent('''\
    import os, sys
    from pathlib import Path
    from runspec import artifacts

    text = artifacts.load("hamlet.txt")            # a plain path: lineage with its digest
    out = Path(os.environ["RUNSPEC_RUN_DIR"]) / "corpus"
    out.mkdir(exist_ok=True)
    (out / "corpus.txt").write_text(Path(text.path).read_text().upper())
    artifacts.save("corpus", out, "dataset",
                   {"total_tokens": 12, "origin": os.environ.get("ORIGIN", "hamlet")})
    sys.exit(int(os.environ.get("FAIL", "0")))
    ''')

API_TRAIN = textwrap.dedent('''\
    import os
    from pathlib import Path
    from runspec import artifacts

    corpus = artifacts.load("art://corpus:latest")  # not declared in the manifest
    out = Path(os.environ["RUNSPEC_OUTPUT_MODEL"])
    out.mkdir()
    (out / "weights.txt").write_text(Path(corpus.path, "corpus.txt").read_text())
    artifacts.Artifact(str(out)).save("model", "checkpoint",
                                      {"step": corpus.metadata["total_tokens"], "loss": 0.5})
    ''')


def _api_project(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "hamlet.txt").write_text("to be")
    (tmp_path / "prep.py").write_text(API_PREP)
    (tmp_path / "train.py").write_text(API_TRAIN)
    (tmp_path / "prep.toml").write_text(
        'schema = "runspec/v1"\nname = "prep"\n[recipe]\nscript = "prep.py"\n')
    (tmp_path / "train.toml").write_text(
        'schema = "runspec/v1"\nname = "train"\n[recipe]\nscript = "train.py"\n'
        '[outputs.artifacts.model]\npath = "${run.dir}/model"\n')


def test_a_recipe_loads_and_saves_through_the_python_api(tmp_path, artifact_registry):
    """prep saves an undeclared output with metadata; train loads it by art:// and saves its
    declared output with checkpoint metadata: both registered with the runs' lineage."""
    _api_project(tmp_path)
    prep = invoke("apply", "--yes", "prep.toml", cwd=tmp_path)
    assert prep.exit_code == 0, prep.output
    assert "registered corpus:v1 from prep/main/default/c1" in prep.stderr
    train = invoke("apply", "--yes", "train.toml", cwd=tmp_path)
    assert train.exit_code == 0, train.output
    registry = Registry(artifact_registry)
    corpus = registry.resolve(parse("art://corpus"))
    assert corpus.fields == {"total_tokens": 12, "origin": "hamlet"}
    assert corpus.metadata["type"] == "dataset" and corpus.metadata["producer"] == \
        "prep/main/default/c1"
    model = registry.resolve(parse("art://model"))
    assert model.fields == {"step": 12, "loss": 0.5} and model.metadata["type"] == "checkpoint"
    assert Path(model.path, "weights.txt").read_text() == "TO BE"
    assert model.metadata["inputs"] == {"corpus": "corpus:v1"}
    tree = invoke("artifacts", "--root", str(artifact_registry), "lineage", "model",
                  cwd=tmp_path).stdout
    assert tree == ("model:v1  [checkpoint] produced by train/main/default/c1\n"
                    "└── corpus:v1  [dataset] produced by prep/main/default/c1\n"
                    f"    └── hamlet.txt  [path] {_short(digest_of(tmp_path / 'hamlet.txt'))}\n")


def test_what_the_code_saves_takes_the_manifests_env_file_mode_and_plain_inputs(
        tmp_path, artifact_registry):
    """A stage that declares no outputs: its code's version is referenced as the env file
    the manifest names says (not the nearest env.toml, which says copy), and its lineage
    holds the manifest's plain-path input."""
    _api_project(tmp_path)
    (tmp_path / "env.toml").write_text('[artifacts]\nmode = "copy"\n')
    (tmp_path / "site").mkdir()
    (tmp_path / "site/env.toml").write_text(
        '[artifacts]\nmode = "reference"\n[here]\nexecutor = "local"\n')
    (tmp_path / "notes.txt").write_text("notes")
    (tmp_path / "prep.toml").write_text(
        'schema = "runspec/v1"\nname = "prep"\n[recipe]\nscript = "prep.py"\n'
        '[env]\nfile = "site/env.toml"\nprofile = "here"\n'
        '[artifacts.notes]\nuri = "notes.txt"\n')
    prep = invoke("apply", "--yes", "prep.toml", cwd=tmp_path)
    assert prep.exit_code == 0, prep.output
    corpus = Registry(artifact_registry).resolve(parse("art://corpus"))
    assert corpus.metadata["mode"] == "reference"
    assert corpus.path == str(tmp_path / "runs/prep/main/default/c1/corpus")
    assert corpus.metadata["inputs"]["notes"] == {
        "path": str(tmp_path / "notes.txt"), "digest": digest_of(tmp_path / "notes.txt")}


def _short(digest: str) -> str:
    scheme, _, value = digest.partition(":")
    return f"{scheme}:{value[:16]}"


def test_a_failed_run_registers_what_it_saved_never(tmp_path, artifact_registry, monkeypatch):
    _api_project(tmp_path)
    monkeypatch.setenv("FAIL", "3")
    monkeypatch.setenv("ORIGIN", "first attempt")
    failed = invoke("apply", "--yes", "prep.toml", cwd=tmp_path)
    assert failed.exit_code == 1
    assert Registry(artifact_registry).names() == []
    monkeypatch.setenv("FAIL", "0")  # the retry registers its own attempt's save, once
    monkeypatch.setenv("ORIGIN", "second attempt")
    retried = invoke("apply", "--yes", "prep.toml", cwd=tmp_path)
    assert retried.exit_code == 0, retried.output
    registry = Registry(artifact_registry)
    assert registry.versions("corpus") == [1]
    assert registry.get("corpus", 1).fields["origin"] == "second attempt"
    ledger = (tmp_path / "runs/prep/main/default/c1/artifacts.jsonl").read_text()
    assert '"attempt": 1' in ledger and '"attempt": 2' in ledger


def test_the_api_outside_a_run_publishes_at_once(tmp_path, artifact_registry, monkeypatch):
    from runspec import artifacts

    monkeypatch.delenv("RUNSPEC_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw.txt").write_text("abc")
    raw = artifacts.load("raw.txt")
    assert (raw.path, raw.metadata, raw.version) == (str(tmp_path / "raw.txt"), {}, None)
    saved = artifacts.save("ckpt", tmp_path / "raw.txt", "checkpoint", {"step": 3})
    assert (saved.uri, saved.metadata, saved.type) == ("art://ckpt:v1", {"step": 3},
                                                       "checkpoint")
    again = artifacts.load("art://ckpt:latest")
    assert (again.version, again.metadata["step"], again.producer) == (1, 3, None)
    assert [a.uri for a in artifacts.list()] == ["art://ckpt:v1"]
    assert artifacts.lineage("ckpt")["inputs"][0]["label"] == str(tmp_path / "raw.txt")
    with pytest.raises(ArtifactError, match='type "checkpoint" needs metadata field "step"'):
        artifacts.save("ckpt", tmp_path / "raw.txt", "checkpoint", {})
    with pytest.raises(ArtifactError, match="does not reach W&B"):
        artifacts.load("wandb://team/proj/data:v1")
    with pytest.raises(ArtifactError, match="needs a path"):
        artifacts.save("nothing")


def test_a_run_on_a_copy_of_its_directory_refuses_what_could_not_be_registered(
        tmp_path, monkeypatch, capsys):
    """A run directory uploaded to a cluster over SSH is a copy: the registry is not there,
    and nothing recorded there comes back. So load(art://…) and save of an undeclared
    name fail the run with what to do instead, and save of a declared output (registered
    from the cluster, with the metadata beside it there) writes its metadata beside it,
    checked first; the same calls in the directory apply wrote record."""
    import json

    from runspec import artifacts
    from runspec.artifacts import ledger

    here = tmp_path / "laptop/runs/p/main"
    (here / "default/c1").mkdir(parents=True)
    ledger.write_context(here, str(tmp_path / "registry"), {"ckpt": "checkpoint",
                                                            "loose": "artifact"})
    cluster = tmp_path / "cluster/runs/p/main"
    cluster.parent.mkdir(parents=True)
    os.rename(here, cluster)  # what the login node holds: the same files, elsewhere
    model = cluster / "default/c1/model.pt"
    model.write_text("weights")
    monkeypatch.setenv("RUNSPEC_RUN_DIR", str(cluster / "default/c1"))
    monkeypatch.setenv("RUNSPEC_OUTPUT_CKPT", str(model))
    monkeypatch.setenv("RUNSPEC_OUTPUT_LOOSE", str(model))
    with pytest.raises(ArtifactError, match=r"save\('extra'\) cannot work in this run: its "
                       r"directory is a copy of .*laptop/runs/p/main") as refused:
        artifacts.save("extra", model)
    assert "[outputs.artifacts.NAME]" in str(refused.value)
    with pytest.raises(ArtifactError, match=r"load\('art://data:latest'\) cannot work"):
        artifacts.load("art://data:latest")
    beside = cluster / "default/c1/model.pt.metadata.json"
    beside.write_text(json.dumps({"step": 1, "loss": 9.0}))  # the recipe's own, kept
    saved = artifacts.save("ckpt", metadata={"step": 3, "note": "x"})
    assert (saved.path, saved.metadata, saved.type) == (str(model), {"step": 3, "note": "x"},
                                                        "checkpoint")
    assert json.loads(beside.read_text()) == {"step": 3, "loss": 9.0, "note": "x"}
    assert ledger.sidecar(model) == ({"step": 3, "loss": 9.0, "note": "x"}, None)
    assert capsys.readouterr().err == ""  # no warning: nothing is dropped
    assert sorted(p.name for p in model.parent.iterdir()) == ["model.pt", beside.name]
    # what registration could not take from here fails the run now, as it would there
    with pytest.raises(ArtifactError, match='field "step" of type "checkpoint": expected an '
                       "integer"):
        artifacts.save("ckpt", metadata={"step": "three"})
    with pytest.raises(ArtifactError, match='as type "model": the manifest declares type = '
                       '"checkpoint"'):
        artifacts.save("ckpt", type="model", metadata={"step": 4})
    with pytest.raises(ArtifactError, match="cannot hand a type back") as untyped:
        artifacts.save("loose", type="model", metadata={"step": 4})
    assert 'give type = "model" in [outputs.artifacts.loose]' in str(untyped.value)
    with pytest.raises(ArtifactError, match="the manifest declares its output ckpt at"):
        artifacts.save("ckpt", cluster / "default/c1", metadata={"step": 4})
    beside.write_text("{not json")
    with pytest.raises(ArtifactError, match=r"model.pt.metadata.json is not JSON") as bad:
        artifacts.save("ckpt", metadata={"step": 4})
    assert beside.read_text() == "{not json"  # the recipe's file is not replaced
    assert "registration reads it" in (bad.value.hint or "")
    assert not (cluster / "default/c1" / ledger.LEDGER_FILE).exists()
    assert not (tmp_path / "registry").exists()  # nothing made on the cluster's side
    beside.unlink()

    os.rename(cluster, here)  # back where apply wrote it: the same calls record
    monkeypatch.setenv("RUNSPEC_RUN_DIR", str(here / "default/c1"))
    monkeypatch.setenv("RUNSPEC_OUTPUT_CKPT", str(here / "default/c1/model.pt"))
    artifacts.save("ckpt", metadata={"step": 3})
    assert '"saved": "ckpt"' in (here / "default/c1" / ledger.LEDGER_FILE).read_text()
    assert not (here / "default/c1/model.pt.metadata.json").exists()


def test_the_metadata_beside_an_output_left_on_a_cluster_is_read_there_and_registered(
        tmp_path, monkeypatch):
    """Over SSH the outputs stay on the cluster: the program that hashes them there (with
    runspec's shipped source) also reads each one's <path>.metadata.json, and registration
    uses what it found as it uses a local sidecar: the fields, or the reason it fails."""
    import json
    from types import SimpleNamespace

    import runspec
    from runspec.artifacts import ledger, publish
    from runspec.backends.login_node import LoginNode
    from runspec.backends.shell import LocalShell

    class Cluster(LocalShell):  # the login node's `python`, run here
        def run(self, argv, **kwargs):
            return super().run([sys.executable, *argv[1:]], **kwargs)

    monkeypatch.setattr(LoginNode, "shell", lambda self: Cluster())
    monkeypatch.setattr(LoginNode, "lib_dir",
                        lambda self: str(Path(runspec.__file__).resolve().parent.parent))
    there = tmp_path / "cluster"
    there.mkdir()
    for name in ("good", "bad", "list", "plain"):
        (there / name).write_text(name)
    (there / "good.metadata.json").write_text(json.dumps({"step": 2, "loss": 0.5}))
    (there / "bad.metadata.json").write_text("{not json")
    (there / "list.metadata.json").write_text("[1]")
    node = LoginNode("login", str(tmp_path))
    paths = [str(there / n) for n in ("good", "bad", "list", "plain", "gone")]
    found = node.outputs_there(paths)
    assert [f["digest"] for f in found] == [digest_of(Path(p)) for p in paths[:4]] + [None]
    assert found[0]["metadata"] == {"step": 2, "loss": 0.5}
    assert "bad.metadata.json is not JSON" in found[1]["metadata_problem"]
    assert "must hold a JSON object" in found[2]["metadata_problem"]
    assert (found[3], found[4]) == ({"digest": digest_of(there / "plain"), "metadata": {}},
                                    {"digest": None})

    def planned(entry):
        member = SimpleNamespace(outputs={"m": ("runs/x/m", "model")})
        remote = {"m": {"path": str(there / "m"), "host": "u@login", "digest": "sha256:0",
                        **entry}}
        return publish._planned_outputs(member, tmp_path, remote, ledger.Ledger(),
                                        publish.Declared({}, {}))

    outputs, problem = planned({"metadata": found[0]["metadata"]})
    assert problem is None
    assert (outputs[0].fields, outputs[0].where) == ({"step": 2, "loss": 0.5},
                                                     ("u@login", "sha256:0"))
    assert planned({})[0][0].fields == {}  # written before runspec read them there
    problem = planned({"metadata_problem": found[1]["metadata_problem"]})[1]
    assert problem is not None and problem.startswith(f"output m: {there}/bad.metadata.json "
                                                      "is not JSON")
    assert problem.endswith("(on u@login)")
    problem = planned({"metadata": {"step": "two"}})[1]  # checked against its type
    assert problem is not None and problem.startswith('output m: metadata field "step" of '
                                                      'type "model": expected an integer')


def test_importing_the_api_stays_cheap():
    """A training script imports it: no pydantic, YAML, filelock or heavy library."""
    code = ("import sys\nfrom runspec.artifacts import load, save, Artifact\n"
            "print('\\n'.join(sys.modules))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())
    assert "runspec.artifacts.api" in loaded
    heavy = {"torch", "wandb", "ray", "pydantic", "ruamel", "filelock", "fsspec", "click"}
    assert not {m for m in loaded if m.split(".")[0] in heavy}


def test_save_of_a_declared_output_elsewhere_fails_the_run(tmp_path, artifact_registry):
    """The API's metadata joins the file's (and wins); a save whose path is not the
    declared output's fails the run rather than registering something else."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text(textwrap.dedent('''\
        import json, os, sys
        from pathlib import Path
        from runspec import artifacts

        out = Path(os.environ["RUNSPEC_OUTPUT_MODEL"])
        out.mkdir(exist_ok=True)
        Path(f"{out}.metadata.json").write_text(json.dumps({"step": 1, "loss": 9.0}))
        elsewhere = out.parent / sys.argv[1]
        elsewhere.mkdir(exist_ok=True)
        artifacts.save("model", elsewhere, metadata={"loss": 0.25})
        '''))
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "elsewhere"
        [recipe]
        script = "train.py"
        args = ["model"]
        [outputs.artifacts.model]
        path = "${run.dir}/model"
        type = "checkpoint"
        '''))
    ok = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert ok.exit_code == 0, ok.output
    version = Registry(artifact_registry).resolve(parse("art://model"))
    assert (version.metadata["type"], version.fields) == ("checkpoint", {"step": 1, "loss": 0.25})
    (tmp_path / "run.toml").write_text((tmp_path / "run.toml").read_text().replace(
        'args = ["model"]', 'args = ["other"]'))
    moved = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert moved.exit_code == 1
    assert "ArtifactError: cannot save model at " in moved.output
    log = (tmp_path / "runs/elsewhere/main/default/c1/stderr.log").read_text()
    assert ("/runs/elsewhere/main/default/c1/other: the manifest declares its output model at "
            f"{tmp_path.resolve()}/runs/elsewhere/main/default/c1/model — save it there, or "
            "leave path out") in log, log
    assert Registry(artifact_registry).versions("model") == [1]


# -- a failing file system: a clear error, nothing registered, nothing half-written ------

WRITE_ONLY = Path("/proc/sys/vm/drop_caches")
"""A regular file that open() refuses even to root (write-only sysctl: EACCES): a link to
it in a tree is a file that cannot be read, whoever runs the tests."""


def _unreadable(link: Path) -> Path:
    """``link``, made a symlink to a regular file nobody can open for reading."""
    try:
        with WRITE_ONLY.open("rb"):
            pass
    except PermissionError:
        link.symlink_to(WRITE_ONLY)
        return link
    except OSError:
        pass
    pytest.skip(f"{WRITE_ONLY} is not a file that open() refuses here")


@contextmanager
def _within(seconds: int) -> Iterator[None]:
    """Fail, rather than hang the suite, when the body blocks (a FIFO opened for reading)."""
    def hung(*_: object) -> None:
        raise AssertionError(f"still blocked after {seconds} s (a FIFO was opened?)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _nothing_left_in(registry: Path, name: str) -> None:
    assert Registry(registry).versions(name) == []
    assert not (registry / name).exists() or not any(
        p.name.startswith("v") for p in (registry / name).iterdir())
    incoming = registry / ".objects" / ".incoming"
    assert not incoming.is_dir() or list(incoming.iterdir()) == []


@pytest.mark.parametrize("mode", ["reference", "copy"])
def test_publishing_a_tree_with_an_unreadable_file_is_a_clear_error(tmp_path, mode):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("one")
    bad = _unreadable(data / "weights.bin")
    result = invoke("artifacts", "--root", "reg", "publish", "data", "data", "--mode", mode,
                    cwd=tmp_path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f'error: cannot publish "data": cannot read {bad}: Permission denied — ' \
        in result.stderr
    assert "cannot write the artifact registry" not in result.stderr  # the source's fault
    _nothing_left_in(tmp_path / "reg", "data")
    if mode == "copy":  # no half-copied object either
        objects = tmp_path / "reg" / ".objects"
        assert not objects.exists() or [p.name for p in objects.iterdir()] in ([], [".incoming"])


@pytest.mark.parametrize("mode", [Mode.AUTO, Mode.REFERENCE, Mode.COPY])
def test_publishing_a_fifo_is_refused_at_once(tmp_path, mode):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    registry = Registry(tmp_path / "reg")
    with _within(10), pytest.raises(ArtifactError) as caught:
        registry.publish("p", pipe, "dataset", mode=mode)
    assert caught.value.message == \
        f'cannot publish "p": cannot read {pipe}: not a regular file or directory (a FIFO)'
    assert caught.value.hint
    _nothing_left_in(tmp_path / "reg", "p")
    tree = tmp_path / "tree"  # in a tree, a FIFO is no file of it (as a dangling link)
    tree.mkdir()
    (tree / "a.txt").write_text("one")
    os.mkfifo(tree / "pipe")
    (tree / "gone").symlink_to(tmp_path / "nowhere")
    with _within(10):
        version = registry.publish("t", tree, "dataset", mode=mode)
        assert registry.drift(version) == []
    assert version.metadata["files"] == 1


def test_drift_of_a_file_that_cannot_be_read_is_a_plan_error(tmp_path, artifact_registry):
    (tmp_path / "pyproject.toml").write_text("")
    data = tmp_path / "shards"
    data.mkdir()
    (data / "shard.txt").write_text("tokens")
    (data / "empty.bin").write_bytes(b"")  # same size as the link's target: re-hashed
    registry = Registry(artifact_registry)
    version = registry.publish("shards", data, "dataset", mode=Mode.REFERENCE)
    (data / "empty.bin").unlink()
    bad = _unreadable(data / "empty.bin")
    assert registry.drift(version) == [f"cannot read {bad}: Permission denied"]
    (tmp_path / "consume.toml").write_text(CONSUME)
    plan = invoke("plan", "consume.toml", cwd=tmp_path)
    assert plan.exit_code == 1, plan.output
    assert "Traceback" not in plan.output
    assert (f"artifacts.data.uri: shards:v1 no longer matches what was registered: cannot "
            f"read {bad}: Permission denied — shards:v1 references {data}") in plan.stderr


def test_drift_of_a_file_replaced_by_a_fifo_never_hangs(tmp_path):
    registry = Registry(tmp_path / "reg")
    flag = tmp_path / "flag"
    flag.write_bytes(b"")
    version = registry.publish("flag", flag, "artifact", mode=Mode.REFERENCE)
    flag.unlink()
    os.mkfifo(flag)
    with _within(10):
        assert registry.drift(version) == \
            [f"cannot read {flag}: not a regular file or directory (a FIFO)"]


def _object_dir(registry: Path, source: Path) -> Path:
    """Where the store puts ``source``'s content (its key's directory)."""
    digest = digest_of(source).partition(":")[2]
    return registry / ".objects" / digest[:2] / digest


def test_a_store_that_cannot_be_written_is_a_clear_error_and_keeps_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("one")
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / ".objects").write_text("a file where the store's directory must be")
    result = invoke("artifacts", "--root", "reg", "publish", "data", "data", "--mode", "copy",
                    cwd=tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (f"error: cannot write the artifact registry at {reg} ({reg / '.objects'}): Not a "
            "directory: a file is where a directory must be — move it away (nothing was "
            "registered)") in result.stderr
    assert Registry(reg).versions("data") == []
    (reg / ".objects").unlink()

    shard = _object_dir(reg, data).parent  # the object's directory's parent is a file
    shard.parent.mkdir(parents=True)
    shard.write_text("")
    with pytest.raises(ArtifactError) as caught:
        Registry(reg).publish("data", data, "dataset", mode=Mode.COPY)
    assert caught.value.message == (f"cannot write the artifact registry at {reg} ({shard}): "
                                    "Not a directory: a file is where a directory must be")
    assert caught.value.hint
    _nothing_left_in(reg, "data")
    shard.unlink()

    final = _object_dir(reg, data) / "data"  # the rename fails: a link where it goes
    final.parent.mkdir(parents=True)
    final.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ArtifactError) as caught:
        Registry(reg).publish("data", data, "dataset", mode=Mode.COPY)
    assert caught.value.message == (f"cannot write the artifact registry at {reg} ({final}): "
                                    "Not a directory: a symbolic link is where a directory "
                                    "must be")
    _nothing_left_in(reg, "data")
    final.unlink()
    assert Registry(reg).publish("data", data, "dataset", mode=Mode.COPY).number == 1


def test_an_immutable_object_directory_fails_the_rename_cleanly(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("one")
    reg = tmp_path / "reg"
    place = _object_dir(reg, data)
    place.mkdir(parents=True)
    if subprocess.run(["chattr", "+i", str(place)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        with pytest.raises(ArtifactError) as caught:
            Registry(reg).publish("data", data, "dataset", mode=Mode.COPY)
        assert caught.value.message == (f"cannot write the artifact registry at {reg} "
                                        f"({place / 'data'}): Operation not permitted")
        _nothing_left_in(reg, "data")
    finally:
        subprocess.run(["chattr", "-i", str(place)], check=True)


def test_registry_metadata_that_cannot_be_written_is_a_clear_error(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("one")
    reg = tmp_path / "reg"
    (reg / "data").mkdir(parents=True)
    (reg / "data" / "v1").write_text("a file where the version's directory must be")
    result = invoke("artifacts", "--root", "reg", "publish", "data", "data.txt", cwd=tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: cannot write the artifact registry at {reg} ({reg / 'data' / 'v1'}" \
        in result.stderr
    assert Registry(reg).versions("data") == [] and Registry(reg).aliases("data") == {}
    (reg / "data" / "v1").unlink()
    (reg / "data" / ".lock").unlink(missing_ok=True)
    (reg / "data" / ".lock").mkdir()  # the lock cannot be taken
    result = invoke("artifacts", "--root", "reg", "publish", "data", "data.txt", cwd=tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"({reg / 'data' / '.lock'}): Is a directory" in result.stderr
    assert Registry(reg).versions("data") == []


def test_an_output_with_an_unreadable_file_fails_its_run_and_registers_nothing(
        tmp_path, artifact_registry):
    _unreadable(tmp_path / "probe")  # skips where no such file exists
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "produce.toml").write_text(PRODUCE.replace("MODE", "reference").replace(
        "open(sys.argv[1] + '/shard.txt', 'w').write('tokens')",
        f"os.symlink('{WRITE_ONLY}', sys.argv[1] + '/shard.bin')"))
    applied = invoke("apply", "--yes", "produce.toml", cwd=tmp_path)
    assert applied.exit_code != 0 and "Traceback" not in applied.output
    bad = tmp_path / "runs/produce/main/default/c1/shards/shard.bin"
    assert (f'output shards could not be registered: cannot publish "shards": cannot read '
            f"{bad}: Permission denied — make it readable") in applied.output
    assert Registry(artifact_registry).versions("shards") == []
