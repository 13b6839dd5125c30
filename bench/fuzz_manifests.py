"""Mutation fuzzer: valid manifests, mangled, must give diagnostics, never a traceback.

Takes the valid fixtures (tests/fixtures/valid/) and the examples' run.toml, run.yaml and
env.toml, mutates them with a seed (byte flips, truncation, duplicated or dropped lines,
deep nesting, hostile names and values, number swaps, YAML aliases, extends loops), and
runs ``validate`` and ``plan`` in-process on each. Counts the outcomes — ok, diagnostics
(the project's own errors), tracebacks (anything else, a timeout or running out of
memory included) — and prints each distinct traceback once (by exception type and the
innermost runspec frame), with the mutated file saved for reproduction.

A tool, not a test: the hostile-document tests pin what it found.
Usage: python bench/fuzz_manifests.py [--cases 5000] [--seed 0] [--save DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted({*ROOT.glob("tests/fixtures/valid/*.toml"), *ROOT.glob("tests/fixtures/valid/*.yaml"),
                *ROOT.glob("examples/**/run.toml"), *ROOT.glob("examples/**/run.yaml"),
                *ROOT.glob("examples/**/env.toml")})

HOSTILE_NAMES = ["a" * 300, "x" * 5000, "\u202eevil", "../../escape", "${sweep.lr}", "$(reboot)",
                 "a.b.c.d.e.f", "-", ".", "..", " ", "\\t", "\\u0001", "\\u0000", "ü" * 200,
                 "'quoted'", "key\\nnewline", "CON", "*", "[0]", "+new", "__proto__"]
HOSTILE_VALUES = ["1e308", "-1e308", "1e+308", "10000000000000000000000000000000", "-1", "0",
                  "9223372036854775808", "nan", "inf", "-inf", "1.5", "true", "[]", "{}",
                  '""', '"' + "a" * 300 + '"', '"${sweep.nope}"', '"${run.dir}/../../x"',
                  '"../../../../etc"', '"\\u0000"', '"' + "b" * 70000 + '"', "[[[[[[]]]]]]",
                  '"/dev/zero"', '"."', '"-"']
NUMBERS = re.compile(r"(?<![\w.])-?\d+(\.\d+)?([eE][+-]?\d+)?(?![\w.])")
NUMBER_SWAPS = ["0", "-1", "1", "2", "1e308", "1e+308", "2.0", "9" * 30, "9" * 5000,
                "1000000", "4096", "0.5", "-0.0", "nan", "inf"]


@dataclass
class Case:
    seed_file: Path
    mutations: list[str]
    data: bytes


# -- mutations ------------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    return text.split("\n")


def flip(rng: random.Random, text: str, yaml: bool) -> str:
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    for _ in range(rng.randint(1, 4)):
        if raw:
            raw[rng.randrange(len(raw))] = rng.choice([rng.randrange(256), *b"[]{}=:\"'#\n-*&,."])
    return raw.decode("utf-8", "surrogateescape")


def truncate(rng: random.Random, text: str, yaml: bool) -> str:
    return text[: rng.randrange(len(text) + 1)]


def duplicate(rng: random.Random, text: str, yaml: bool) -> str:
    lines = _lines(text)
    start = rng.randrange(len(lines))
    block = lines[start: start + rng.randint(1, 4)]
    at = rng.randrange(len(lines) + 1)
    return "\n".join(lines[:at] + block * rng.randint(1, 3) + lines[at:])


def drop(rng: random.Random, text: str, yaml: bool) -> str:
    lines = _lines(text)
    del lines[rng.randrange(len(lines))]
    return "\n".join(lines)


def swap(rng: random.Random, text: str, yaml: bool) -> str:
    lines = _lines(text)
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return "\n".join(lines)


def nest(rng: random.Random, text: str, yaml: bool) -> str:
    depth = rng.choice([10, 63, 64, 65, 100, 300, 1000, 5000])
    if yaml:
        inner = rng.choice(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth])
        block = f"deep: {inner}"
        if rng.random() < 0.3:
            block = "deep:\n" + "".join("  " * i + "a:\n" for i in range(1, min(depth, 400))) + \
                "  " * min(depth, 400) + "b: 1"
    else:
        inner = rng.choice(["[" * depth + "]" * depth, "{a = " * depth + "1" + "}" * depth])
        block = rng.choice([f"deep = {inner}", "[" + ".".join(["t"] * depth) + "]\nx = 1",
                            ".".join(["k"] * depth) + " = 1"])
    lines = _lines(text)
    at = rng.randrange(len(lines) + 1)
    return "\n".join(lines[:at] + [block] + lines[at:])


def rename(rng: random.Random, text: str, yaml: bool) -> str:
    keys = list(re.finditer(r"^(\s*)([A-Za-z_][\w.-]*|\"[^\"]*\")(\s*[=:])", text, re.M))
    if not keys:
        return text
    key = rng.choice(keys)
    name = rng.choice(HOSTILE_NAMES)
    name = f'"{name}"'
    return text[: key.start(2)] + name + text[key.end(2):]


def revalue(rng: random.Random, text: str, yaml: bool) -> str:
    values = list(re.finditer(r"([=:]\s*)([^\s#][^\n#]*)$", text, re.M))
    if not values:
        return text
    value = rng.choice(values)
    return text[: value.start(2)] + rng.choice(HOSTILE_VALUES) + text[value.end(2):]


def renumber(rng: random.Random, text: str, yaml: bool) -> str:
    numbers = list(NUMBERS.finditer(text))
    if not numbers:
        return revalue(rng, text, yaml)
    number = rng.choice(numbers)
    return text[: number.start()] + rng.choice(NUMBER_SWAPS) + text[number.end():]


def alias(rng: random.Random, text: str, yaml: bool) -> str:
    if not yaml:
        return nest(rng, text, yaml)
    width, depth = rng.choice([(9, 9), (10, 6), (3, 20), (2, 40), (100, 3)])
    lines = ["lol0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, depth):
        lines.append(f"lol{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def sweep(rng: random.Random, text: str, yaml: bool) -> str:
    """A sweep of hostile size: many values, ranges, include entries, cycles."""
    params = rng.randint(1, 9)
    size = rng.choice([1, 10, 100, 1000])
    body = {"x": f"[{', '.join(str(i) for i in range(size))}]",
            "r": rng.choice(["{range = [0, 1e9]}", "{range = [0, 1e300]}", "{range = [0, 1, 1e-9]}",
                             "{range = [0, inf]}", "{range = [5, 0]}"])}
    cycles = rng.choice([1, 3, 1000, 10**6, 10**30])
    if yaml:
        parts = "\n".join(f"    p{i}: {body['x']}" for i in range(params))
        extra = f"sweep:\n  parameters:\n{parts}\n    r: {body['r'].replace(' = ', ': ')}\n" \
                f"campaign:\n  cycles: {cycles}\n"
    else:
        parts = "\n".join(f"p{i} = {body['x']}" for i in range(params))
        extra = f"\n[sweep.parameters]\n{parts}\nr = {body['r']}\n[campaign]\ncycles = {cycles}\n"
    lines = re.sub(r"(?ms)^\[?(sweep|campaign)\b.*?(?=^\[|\Z)", "", text) if not yaml else text
    return lines.rstrip("\n") + "\n" + extra


def extends(rng: random.Random, text: str, yaml: bool) -> str:
    target = rng.choice(["run.toml", "run.yaml", "missing.toml", "/dev/zero", ".", "a" * 300])
    line = f"extends: {target}" if yaml else f'extends = "{target}"'
    return line + "\n" + text


def control(rng: random.Random, text: str, yaml: bool) -> str:
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice(["\x00", "\x01", "\x1b[2J", "\r", "\t", "\ufeff", "\u2028",
                                   "\udcff", "\x7f", "\x0c"]) + text[at:]


MUTATIONS = [flip, truncate, duplicate, drop, swap, nest, rename, revalue, renumber, alias,
             sweep, extends, control]


def mutate(rng: random.Random, seed_file: Path) -> Case:
    text = seed_file.read_text(encoding="utf-8")
    yaml = seed_file.suffix in (".yaml", ".yml")
    applied = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        mutation = rng.choice(MUTATIONS)
        text = mutation(rng, text, yaml)
        applied.append(mutation.__name__)
    return Case(seed_file, applied, text.encode("utf-8", "surrogateescape"))


# -- running --------------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """A case ran past its time: a hang is as much a bug as a traceback."""


def _alarm(signum, frame):
    raise CaseTimeout()


def where(error: BaseException) -> str:
    """The innermost frame in runspec's code (else the innermost at all): the dedup key."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/runspec/" in f.filename.replace("\\", "/")]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "?"
    name = frame.filename.replace("\\", "/")
    name = name[name.rfind("/runspec/") + 1:] if "/runspec/" in name else Path(name).name
    return f"{name}:{frame.lineno} in {frame.name}"


@dataclass
class Failure:
    """A traceback, kept as text: the exception's frames may hold gigabytes."""

    key: str
    message: str
    frames: list[str]


def _failure(error: BaseException) -> Failure:
    kind = "Timeout" if isinstance(error, CaseTimeout) else type(error).__name__
    failure = Failure(f"{kind} at {where(error)}", f"{kind}: {str(error)[:300]}",
                      traceback.format_tb(error.__traceback__))
    traceback.clear_frames(error.__traceback__)
    error.__traceback__ = None
    return failure


def run_case(case: Case, workspace: Path, timeout: float) -> tuple[str, Failure | None]:
    """Write the mutated file beside its seed's copy, validate it and plan it."""
    from runspec.manifest.errors import ManifestError
    from runspec.manifest.validate import validate_file
    from runspec.plan.pipeline import make_plan
    from runspec.state.store import StateError

    relative = case.seed_file.relative_to(ROOT)
    target = workspace / relative
    original = target.read_bytes()
    manifest = target if target.name != "env.toml" else next(
        (p for p in (target.with_name("run.toml"), target.with_name("run.yaml")) if p.exists()),
        None)
    target.write_bytes(case.data)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    outcome = "ok"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            diagnostics = validate_file(target)
            if any(d.severity == "error" for d in diagnostics):
                outcome = "diagnostics"
            if manifest is not None:
                try:
                    make_plan(manifest)
                except (ManifestError, StateError):
                    outcome = "diagnostics"
        return outcome, None
    except (CaseTimeout, Exception) as error:  # what the fuzzer is looking for
        signal.setitimer(signal.ITIMER_REAL, 0)
        return "traceback", _failure(error)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        gc.collect()
        target.write_bytes(original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--memory-gb", type=float, default=3.0,
                        help="address-space limit, so a blowup is a MemoryError, not swapping")
    parser.add_argument("--save", type=Path, default=None,
                        help="directory for one mutated file per distinct traceback")
    parser.add_argument("--show", type=int, default=12, help="frames shown per traceback")
    args = parser.parse_args()
    save = args.save.resolve() if args.save else None

    limit = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    sys.setrecursionlimit(1000)

    workspace = Path(tempfile.mkdtemp(prefix="runspec-fuzz-"))
    for directory in ("tests/fixtures/valid", "examples"):
        shutil.copytree(ROOT / directory, workspace / directory,
                        ignore=shutil.ignore_patterns("runs", ".runspec", "__pycache__"))
    (workspace / "pyproject.toml").write_text("")  # the env.toml search stops here
    os.environ["RUNSPEC_ARTIFACTS"] = str(workspace / "artifacts")
    os.chdir(workspace)

    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    first: dict[str, tuple[Case, Failure]] = {}
    started = time.perf_counter()
    for index in range(args.cases):
        case = mutate(rng, rng.choice(SEEDS))
        outcome, failure = run_case(case, workspace, args.timeout)
        counts[outcome] += 1
        if failure is not None:
            kinds[failure.key] += 1
            first.setdefault(failure.key, (case, failure))
        if (index + 1) % 500 == 0:
            print(f"… {index + 1} cases, {counts['traceback']} tracebacks", file=sys.stderr)
    elapsed = time.perf_counter() - started
    shutil.rmtree(workspace, ignore_errors=True)

    print(f"cases: {args.cases} (seed {args.seed}, {elapsed:.0f} s)")
    print(f"ok: {counts['ok']}  diagnostics: {counts['diagnostics']}  "
          f"tracebacks: {counts['traceback']} ({len(kinds)} distinct)")
    for number, (key, count) in enumerate(kinds.most_common(), start=1):
        case, failure = first[key]
        print(f"\n#{number} {key} — {count}×, e.g. {case.seed_file.relative_to(ROOT)} "
              f"after {', '.join(case.mutations)}")
        print(f"   {failure.message}")
        for line in failure.frames[-args.show:]:
            print("   " + line.rstrip().replace("\n", "\n   "))
        if save:
            save.mkdir(parents=True, exist_ok=True)
            saved = save / f"{number:02d}-{case.seed_file.name}"
            saved.write_bytes(case.data)
            print(f"   saved: {saved}")
    sys.exit(1 if counts["traceback"] else 0)


if __name__ == "__main__":
    main()
