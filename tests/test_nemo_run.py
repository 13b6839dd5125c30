"""The NeMo-Run backend without a cluster: what the plan shows NeMo-Run will receive (the
executor configuration and the task's launch.sh, snapshot-tested), the keys each NeMo-Run
executor accepts, and a failing ``import nemo_run`` (simulated: the one fake here).

Rendering never imports nemo_run; the integration tests (tests/integration/test_nemo_run.py)
submit through the real package."""

from __future__ import annotations

import importlib.abc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, chdir, invoke

from runspec.backends import backend_for
from runspec.plan.pipeline import make_plan

TRAIN = "import sys\nprint('step', sys.argv[1:])\n"
KNOWN_HOSTS = "/etc/runspec/known_hosts"


def project(tmp_path: Path, env: str, extra: str = "", env_toml: str | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "nr"
        [recipe]
        script = "train.py"
        [resources]
        time = "00:05:00"
        ''') + env + '\n[sweep.parameters]\n"+lr" = [0.1, 0.2]\n' + extra)
    if env_toml is not None:
        (tmp_path / "env.toml").write_text(env_toml)
    return tmp_path


def portable(text: str, root: Path) -> str:
    for form, name in ((str(root.resolve()), "<root>"), (str(root), "<root>"),
                       (str(ROOT), "<runspec checkout>")):
        text = text.replace(form, name)
    return text


def rendered(root: Path) -> str:
    """Everything NeMo-Run receives, for one run and for the launch, as the plan holds it."""
    with chdir(root):
        result = make_plan(root / "run.toml")
    run = result.plan.runs[0]
    (launch,) = [launch for launch in result.launches if launch.stage == run.stage]
    request = dict(launch.request)
    request["tasks"] = request["tasks"][:1]  # the others differ in the run only
    return portable("\n".join([
        "== launch.sh", run.files["launch.sh"],
        "== nemo_run.json", run.files["nemo_run.json"],
        "== launch request", json.dumps(request, indent=2),
        "== describe", backend_for(launch.backend).describe_launches([launch])]), root)


ENVS = {
    "local": '[env]\nexecutor = "nemo-run"\n',
    "slurm_local_tunnel": textwrap.dedent('''\
        [env]
        executor = "nemo-run"
        nemo_executor = "slurm"
        partition = "debug"
        account = "ml"
        extra_directives = { reservation = "r1", requeue = true }
        '''),
    "slurm_ssh": textwrap.dedent(f'''\
        [env]
        executor = "nemo-run"
        nemo_executor = "slurm"
        partition = "batch"
        tunnel = "ssh"
        host = "login.example.org"
        user = "me"
        port = 2222
        identity = "~/.ssh/id_ed25519"
        known_hosts = "{KNOWN_HOSTS}"
        remote_job_dir = "/lustre/me/jobs"
        packager = "pattern"
        package_patterns = ["*.py"]
        '''),
}
PRESETS = {
    "docker": textwrap.dedent('''\
        [box]
        executor = "docker"
        container_image = "nvcr.io/nvidia/pytorch:25.01-py3"
        runtime = "nvidia"
        ipc_mode = "host"
        shm_size = "16g"
        mounts = ["/data:/data"]
        '''),
    "dgxcloud": textwrap.dedent('''\
        [box]
        executor = "dgxcloud"
        container_image = "nvcr.io/nvidia/nemo:25.11"
        base_url = "https://dgx.example.org/api/v1"
        kube_apiserver_url = "https://k8s.example.org"
        client_id = "runspec"
        client_secret = { from_env = "DGX_CLIENT_SECRET" }
        project_name = "ml"
        pvc_nemo_run_dir = "/pvc/nemo-run"
        '''),
    "lepton": textwrap.dedent('''\
        [box]
        executor = "lepton"
        container_image = "nvcr.io/nvidia/nemo:25.11"
        nemo_run_dir = "/mnt/nemo-run"
        resource_shape = "gpu.8xh100"
        node_group = "ng-1"
        '''),
    "skypilot": textwrap.dedent('''\
        [box]
        executor = "skypilot"
        cloud = "aws"
        gpus = "H100"
        use_spot = true
        cluster_name = "runspec"
        '''),
}


@pytest.mark.parametrize("name", sorted(ENVS))
def test_the_plan_shows_what_nemo_run_receives(tmp_path, name, text_snapshot):
    root = project(tmp_path, ENVS[name])
    assert invoke("validate", "run.toml", cwd=root).exit_code == 0
    assert rendered(root) == text_snapshot


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"dgxcloud"}))
def test_nemotron_executor_names_render_their_nemo_run_executor(tmp_path, name, text_snapshot):
    root = project(tmp_path, '[env]\nprofile = "box"\n', env_toml=PRESETS[name])
    assert rendered(root) == text_snapshot


def test_the_same_executor_through_nemo_executor(tmp_path):
    via_preset = rendered(project(tmp_path / "a", '[env]\nprofile = "box"\n',
                                  env_toml=PRESETS["docker"]))
    inline = PRESETS["docker"].replace('executor = "docker"',
                                       'executor = "nemo-run"\nnemo_executor = "docker"')
    via_key = rendered(project(tmp_path / "b", '[env]\nprofile = "box"\n', env_toml=inline))
    assert via_key.split("== launch request")[0] == via_preset.split("== launch request")[0]


def test_rendering_never_imports_nemo_run(tmp_path):
    root = project(tmp_path, ENVS["slurm_ssh"])
    code = ("import sys; from runspec.cli import main\n"
            "try:\n    main(['plan', 'run.toml'])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in "
            "('nemo_run', 'fabric', 'paramiko', 'torchx')], 'imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# -- what each executor accepts -----------------------------------------------------------------

def refused(root: Path) -> str:
    """What plan refuses (it validates first; a key a NeMo-Run executor does not read is
    found where the plan is rendered)."""
    result = invoke("plan", "run.toml", cwd=root)
    assert result.exit_code == 1, result.output
    return result.output


def test_a_key_of_another_nemo_run_executor_is_refused_by_name(tmp_path):
    root = project(tmp_path, '[env]\nexecutor = "nemo-run"\npartition = "debug"\n')
    out = refused(root)
    assert 'partition: NeMo-Run\'s LocalExecutor does not read it (a key of SlurmExecutor)' in out
    assert 'nemo_executor = "slurm"' in out


def test_a_docker_key_on_slurm_is_refused(tmp_path):
    root = project(tmp_path, '[env]\nexecutor = "nemo-run"\nnemo_executor = "slurm"\n'
                             'runtime = "nvidia"\n')
    assert "runtime: NeMo-Run's SlurmExecutor does not read it (a key of DockerExecutor" \
        in refused(root)


def test_a_key_that_nemo_run_cannot_take_is_refused(tmp_path):
    root = project(tmp_path, '[env]\nexecutor = "nemo-run"\nnemo_executor = "slurm"\n'
                             'template = "site.sh.j2"\n')
    assert "NeMo-Run writes its own sbatch script" in refused(root)


def test_an_unknown_key_is_a_schema_error(tmp_path):
    root = project(tmp_path, '[env]\nprofile = "box"\n',
                   env_toml='[box]\nexecutor = "skypilot"\nruntime = "nvidia"\n')
    out = refused(root)
    assert "runtime" in out and "unknown key" in out


def test_a_secret_value_is_refused_and_not_shown(tmp_path):
    secret = "s3cr3t-value-0123456789"
    toml = PRESETS["dgxcloud"].replace('{ from_env = "DGX_CLIENT_SECRET" }', f'"{secret}"')
    root = project(tmp_path, '[env]\nprofile = "box"\n', env_toml=toml)
    out = refused(root)
    assert "client_secret" in out
    assert secret not in out


def test_dgxcloud_renders_but_is_refused(tmp_path, text_snapshot):
    """NeMo-Run's DGXCloudExecutor keeps client_secret's value in its experiment files, so
    runspec refuses to submit it (under both names); its configuration still renders."""
    from runspec.backends.nemo_run import NemoRunBackend
    from runspec.ir import RunSpec

    root = project(tmp_path, '[env]\nprofile = "box"\n', env_toml=PRESETS["dgxcloud"])
    assert 'executor "dgxcloud" can be planned and rendered' in refused(root)
    inline = PRESETS["dgxcloud"].replace('executor = "dgxcloud"',
                                         'executor = "nemo-run"\nnemo_executor = "dgxcloud"')
    other = project(tmp_path / "b", '[env]\nprofile = "box"\n', env_toml=inline)
    assert "keeps client_secret's value in the experiment's files" in refused(other)
    settings = {"base_url": "https://dgx.example.org/api/v1",
                "kube_apiserver_url": "https://k8s.example.org", "client_id": "runspec",
                "client_secret": {"from_env": "DGX_CLIENT_SECRET"}, "project_name": "ml",
                "pvc_nemo_run_dir": "/pvc/nemo-run"}
    spec = RunSpec(key="nr/main/default/c1", stage="main", run_dir="runs/nr/main/default/c1",
                   argv=["python", "train.py"], env={}, secrets={}, cwd=".",
                   resources={"nodes": 2, "procs_per_node": 8, "gpus_per_node": 8},
                   executor="dgxcloud", settings=settings,
                   container_image="nvcr.io/nvidia/nemo:25.11", mounts=[],
                   startup_commands=[])
    files = NemoRunBackend("dgxcloud").render_run(spec, root, "")
    assert portable(files["nemo_run.json"], root) == text_snapshot
    assert "DGX_CLIENT_SECRET" in files["nemo_run.json"]


@pytest.mark.parametrize(("campaign", "said"), [
    ("retries = 2", "does not start a failed run again"),
    ("config_gap = 5", "without idle time between them"),
    ("max_parallel = 3", "not 3 at a time"),
])
def test_campaign_rules_nemo_run_cannot_keep_are_refused(tmp_path, campaign, said):
    root = project(tmp_path, ENVS["local"], extra=f"[campaign]\n{campaign}\n")
    assert said in refused(root)


def test_an_ordered_campaign_runs_one_task_after_another(tmp_path):
    root = project(tmp_path, ENVS["slurm_local_tunnel"],
                   extra='[campaign]\ncycles = 2\norder = "interleaved"\n')
    text = rendered(root)
    assert '"sequential": true' in text
    assert "one after another" in text


def test_secrets_are_refused_where_nemo_run_would_write_them(tmp_path):
    root = project(tmp_path, ENVS["slurm_local_tunnel"] +
                   'secrets = { HF_TOKEN = { from_env = "HF_TOKEN" } }\n')
    assert "secrets cannot be delivered through NeMo-Run's SlurmExecutor" in refused(root)


def test_a_local_secret_stays_a_reference(tmp_path):
    root = project(tmp_path, ENVS["local"] +
                   'secrets = { HF_TOKEN = { from_env = "RUNSPEC_TEST_HF" } }\n')
    text = rendered(root)
    assert 'export HF_TOKEN="${RUNSPEC_TEST_HF:?secret RUNSPEC_TEST_HF is not set}"' in text


def test_git_packaging_over_ssh_needs_committed_files(tmp_path):
    env = ENVS["slurm_ssh"].replace('packager = "pattern"\npackage_patterns = ["*.py"]\n', "")
    assert "packs committed files only" in refused(project(tmp_path, env))
    committed = project(tmp_path / "b", env + "include_uncommitted = false\n")
    assert '"class": "GitArchivePackager"' in rendered(committed)


# -- a failing import of nemo_run (faked) ----------------------------------------------------------

class FakeBrokenNemoRun(importlib.abc.MetaPathFinder):
    """A fake: ``import nemo_run`` fails as it does with a leptonai release it was not built
    for (a fault this machine cannot produce on demand)."""

    def find_spec(self, name, path=None, target=None):
        if name == "nemo_run" or name.startswith("nemo_run."):
            raise ModuleNotFoundError("No module named 'leptonai.api.v1'", name="leptonai.api.v1")
        return None


def test_a_failing_import_is_a_clear_error_and_keeps_the_state(tmp_path, monkeypatch):
    root = project(tmp_path, ENVS["local"])
    for name in [m for m in sys.modules if m == "nemo_run" or m.startswith("nemo_run.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [FakeBrokenNemoRun(), *sys.meta_path])
    result = invoke("apply", "--yes", "run.toml", cwd=root)
    assert result.exit_code != 0
    out = result.output
    assert "cannot import nemo_run (ModuleNotFoundError: No module named 'leptonai.api.v1')" in out
    assert "pip install 'runspec[nemo-run]'" in out and "leptonai==0.27.3" in out
    assert "Traceback" not in out
    state = json.loads((root / ".runspec/state/nr.json").read_text())
    assert state["members"] == {}  # refused: nothing recorded as submitted
    assert not list(root.glob("runs/**/experiments/*"))
