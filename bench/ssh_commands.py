"""Cost of one scheduler command on a login node: a fresh ssh connection per command
against runspec's shell (one OpenSSH ControlMaster per apply), interleaved A/B, medians.

Runs against the test login node (tests/services/sshd.sh, started here if it is not up,
stopped again after). paramiko and asyncssh are measured too when they are importable
(they are not runspec dependencies: install them into a scratch venv to compare).

    python bench/ssh_commands.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "tests/services/sshd.sh"


def service_env() -> tuple[dict[str, str], bool]:
    started = subprocess.run(["bash", str(SERVICE), "status"], capture_output=True).returncode != 0
    if started:
        subprocess.run(["bash", str(SERVICE), "start"], check=True, capture_output=True)
    out = subprocess.run(["bash", str(SERVICE), "env"], check=True, capture_output=True,
                         text=True).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    return env, started


def timed(action) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from runspec.backends.shell import SSHShell

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    env, started = service_env()
    settings = dict(host=env["RUNSPEC_SSH_HOST"], user=env["RUNSPEC_SSH_USER"],
                    port=int(env["RUNSPEC_SSH_PORT"]), identity=env["RUNSPEC_SSH_IDENTITY"],
                    known_hosts=env["RUNSPEC_SSH_KNOWN_HOSTS"])
    fresh_shell = SSHShell(**settings)  # never opened: each run is its own connection
    master = SSHShell(**settings)
    master.open()
    peers = {}
    try:
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(settings["known_hosts"])
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(settings["host"], settings["port"], settings["user"],
                       key_filename=settings["identity"], allow_agent=False, look_for_keys=False)

        def paramiko_true() -> None:
            _, out, _ = client.exec_command("true")
            out.channel.recv_exit_status()

        peers["paramiko (open connection)"] = paramiko_true
    except ImportError:
        print("paramiko not importable: skipped")
    samples: dict[str, list[float]] = {"fresh ssh per command": [], "runspec shell (master)": [],
                                       **{name: [] for name in peers}}
    try:
        for _ in range(2):  # warm-up
            fresh_shell.run(["true"])
            master.run(["true"])
        for _ in range(rounds):
            samples["fresh ssh per command"].append(timed(lambda: fresh_shell.run(["true"])))
            samples["runspec shell (master)"].append(timed(lambda: master.run(["true"])))
            for name, action in peers.items():
                samples[name].append(timed(action))
    finally:
        master.close()
        if started:
            subprocess.run(["bash", str(SERVICE), "stop"], capture_output=True)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, values in samples.items():
        print(f"{name:28s} median {medians[name] * 1000:7.1f} ms  min {min(values) * 1000:7.1f}"
              f"  max {max(values) * 1000:7.1f}  (n={len(values)})")
    ratio = medians["fresh ssh per command"] / medians["runspec shell (master)"]
    print(f"fresh / master: {ratio:.1f}x")


if __name__ == "__main__":
    main()
