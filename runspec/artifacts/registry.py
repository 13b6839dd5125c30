"""The artifact registry: ``{root}/{name}/v{N}/metadata.json`` (+ ``files.json``).

A version is immutable. It records its type, a content digest and the digest of every
file (``files.json``), when and by which run it was produced, and which inputs that run
used. Its data is either *copied* into the registry, content-addressed under
``{root}/.objects/`` (``mode = "copy"``), or *referenced* where it was written
(``mode = "reference"``); a reference is checked against its digests whenever a plan pins
it, so a rewritten directory is an error, never silently a different "v1".

New versions and aliases (``latest`` included) are written under a per-name file lock,
each file atomically (temp + rename), so concurrent publishers never lose or share a
version. That holds for a local root; an fsspec URL root (``s3://…``, ``memory://…``) is
written without a cross-process lock (see docs/artifacts.md).
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from runspec.artifacts.digest import (
    Scheme,
    Tree,
    Unreadable,
    changes,
    copy_hashed,
    legacy_digest,
    remove_copy,
    scan,
    scheme_of,
)
from runspec.artifacts.uri import ArtifactError, ArtifactRef

ENV_VARIABLE = "RUNSPEC_ARTIFACTS"
DEFAULT_DIR = ".runspec/artifacts"
"""The registry's place in a project when env.toml names none (beside ``.runspec/state``)."""
OBJECTS = ".objects"
COPY_LIMIT = 256 * 2**20
"""Without a ``mode``, an output up to this total size (256 MiB: copied and hashed in
about 2 s) goes into the registry, a larger one is referenced in place (copying 100 GB of
checkpoints would double the disk and take minutes)."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")


class Mode(StrEnum):
    COPY = "copy"
    REFERENCE = "reference"
    AUTO = "auto"          # copy up to COPY_LIMIT, reference above: outputs' default


@dataclass(frozen=True)
class BestBy:
    """``alias_best``: which metric of the producing run decides the ``best`` alias."""

    metric: str
    goal: str = "min"

    def better(self, value: float, than: float) -> bool:
        return value < than if self.goal == "min" else value > than


BEST = "best"


@dataclass(frozen=True)
class Version:
    name: str
    number: int
    metadata: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.number}"

    @property
    def path(self) -> str:
        return self.metadata["path"]

    @property
    def fields(self) -> dict[str, Any]:
        """The metadata its producer gave (``total_tokens``, ``step``…), beside runspec's own."""
        given = self.metadata.get("fields")
        return given if isinstance(given, dict) else {}

    @property
    def source(self) -> str:
        """Where the data was published from (for a reference, where it still is)."""
        return self.metadata.get("source") or self.metadata["path"]


# -- where the bytes are --------------------------------------------------------------------

class _LocalStore:
    """A registry in a directory: file locks and atomic renames."""

    remote = False

    def __init__(self, root: Path):
        self.root = root

    def where(self, key: str) -> Path:
        return self.root / key

    def location(self, key: str) -> str:
        return str(self.where(key))

    def read_json(self, key: str) -> Any:
        try:
            return json.loads(self.where(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_json(self, key: str, data: Any) -> None:
        from runspec.measure.files import write_text_atomic

        path = self.where(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        except OSError as error:  # the temp file is gone; ``path`` is as it was
            raise _unwritable(self.root, error, path) from None

    def children(self, key: str) -> list[str]:
        try:
            return [p.name for p in self.where(key).iterdir()]
        except OSError:
            return []

    def exists(self, key: str) -> bool:
        return self.where(key).exists()

    @contextmanager
    def locked(self, name: str) -> Iterator[None]:
        from filelock import FileLock

        directory = self.where(name)
        lock = FileLock(str(directory / ".lock"), timeout=120)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except OSError as error:  # filelock's Timeout too (a TimeoutError)
            raise _unwritable(self.root, error, directory / ".lock") from None
        try:
            yield
        finally:
            lock.release()

    def put(self, source: Path) -> tuple[str, Tree, Tree]:
        """Copy ``source`` into the object store: ``(key, tree of the copy, tree of the
        source)``. Content-addressed, so equal content is stored once; the copy is made
        beside its final place and renamed there, so no reader sees half an object. A
        source that cannot be read raises ``Unreadable`` (the caller names it), a store that
        cannot be written ``ArtifactError``; either way nothing of the copy is left."""
        incoming = self.where(f"{OBJECTS}/.incoming/{uuid.uuid4().hex}")
        copy = incoming / source.name
        try:
            incoming.mkdir(parents=True)
        except OSError as error:
            raise _unwritable(self.root, error, incoming) from None
        try:
            copied, source_tree = copy_hashed(source, copy)
        except OSError as error:
            remove_copy(copy)
            _rmdir(incoming)
            if isinstance(error, Unreadable):
                raise
            raise _unwritable(self.root, error, copy) from None
        digest = copied.digest.partition(":")[2]
        key = f"{OBJECTS}/{digest[:2]}/{digest}/{source.name}"
        final = self.where(key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            if _stored(final):  # published before: the same bytes are stored once
                raise FileExistsError(final)
            os.rename(copy, final)
        except OSError as error:
            remove_copy(copy)
            _rmdir(incoming)
            if not _stored(final):  # not there from before, nor from a concurrent publisher
                raise _unwritable(self.root, error, final) from None
        _rmdir(incoming)
        try:
            return key, scan_stat(final, copied), source_tree
        except OSError as error:
            raise _unwritable(self.root, error, final) from None

    def check(self, key: str, tree: Tree) -> list[str]:
        return changes(self.where(key), tree)


class _UrlStore:
    """A registry at an fsspec URL. Writes go to a temporary name and are moved into
    place (atomic where the file system's move is); locking is within this process only."""

    remote = True
    _locks: dict[str, threading.Lock] = {}

    def __init__(self, url: str):
        import fsspec

        try:
            self.fs, self.base = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as error:
            raise ArtifactError(f"cannot open the artifact registry at {url}: {error}",
                                "install the fsspec filesystem for that URL (s3fs for s3://, "
                                "gcsfs for gs://), or give a local path") from None
        self.root = url

    def where(self, key: str) -> str:
        return f"{self.base.rstrip('/')}/{key}"

    def location(self, key: str) -> str:
        return str(self.fs.unstrip_protocol(self.where(key)))

    def read_json(self, key: str) -> Any:
        try:
            return json.loads(self.fs.cat_file(self.where(key)))
        except (OSError, ValueError):
            return None

    def write_json(self, key: str, data: Any) -> None:
        final = self.where(key)
        temporary = f"{final}.{uuid.uuid4().hex}.tmp"
        try:
            self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(temporary, (json.dumps(data, indent=1, sort_keys=True)
                                          + "\n").encode())
            self.fs.mv(temporary, final)
        except OSError as error:
            raise _unwritable(self.root, error) from None

    def children(self, key: str) -> list[str]:
        try:
            return [str(p).rstrip("/").rsplit("/", 1)[-1]
                    for p in self.fs.ls(self.where(key), detail=False)]
        except OSError:
            return []

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.where(key)))

    @contextmanager
    def locked(self, name: str) -> Iterator[None]:
        lock = self._locks.setdefault(f"{self.root}/{name}", threading.Lock())
        with lock:
            yield

    def put(self, source: Path) -> tuple[str, Tree, Tree]:
        tree = scan(source, Scheme.CONTENT)
        digest = tree.digest.partition(":")[2]
        key = f"{OBJECTS}/{digest[:2]}/{digest}/{source.name}"
        if not self.exists(key):
            staging = f"{OBJECTS}/.incoming/{uuid.uuid4().hex}"
            try:
                for record in tree.files:
                    target = self.where(f"{staging}/{record.path}" if tree.is_dir else staging)
                    self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                    self.fs.put_file(str(source / record.path if tree.is_dir else source), target)
                if tree.is_dir and not tree.files:
                    self.fs.makedirs(self.where(staging), exist_ok=True)
                self.fs.makedirs(self.where(key).rsplit("/", 1)[0], exist_ok=True)
                self.fs.mv(self.where(staging), self.where(key), recursive=tree.is_dir)
            except OSError as error:
                raise _unwritable(self.root, error) from None
        return key, tree, tree

    def check(self, key: str, tree: Tree) -> list[str]:
        """A copy at a URL is checked by its files and sizes (reading it all back from
        object storage at every plan would cost what copying it did)."""
        path = self.where(key)
        try:
            found = self.fs.find(path, detail=True) if tree.is_dir else \
                {path: self.fs.info(path)}
        except OSError:
            return [f"{self.location(key)} no longer exists"]
        prefix = len(path.rstrip("/")) + 1
        sizes = {(str(p)[prefix:] if tree.is_dir else tree.files[0].path):
                 int(info.get("size") or 0) for p, info in found.items()}
        recorded = {f.path: f.size for f in tree.files}
        out = [f"{n} was removed" for n in sorted(recorded.keys() - sizes.keys())]
        out += [f"{n} was added" for n in sorted(sizes.keys() - recorded.keys())]
        out += [f"{n} changed ({recorded[n]} → {sizes[n]} bytes)"
                for n in sorted(recorded.keys() & sizes.keys()) if recorded[n] != sizes[n]]
        return out


def scan_stat(path: Path, tree: Tree) -> Tree:
    """``tree`` (whose hashes are known) with the stat fields of the files at ``path``."""
    from dataclasses import replace

    records = []
    for record in tree.files:
        info = (path / record.path if tree.is_dir else path).stat()
        records.append(replace(record, mtime_ns=info.st_mtime_ns, ctime_ns=info.st_ctime_ns))
    return replace(tree, files=tuple(records))


def _stored(path: Path) -> bool:
    """Whether an object is at ``path`` (a dangling link, or nothing, is none)."""
    try:
        path.stat()
    except OSError:
        return False
    return True


def _rmdir(path: Path) -> None:
    with suppress(OSError):
        path.rmdir()


def _unwritable(root: Any, error: OSError, where: Any = None) -> ArtifactError:
    """The registry cannot be written: at ``root``, where in it (the OSError's file, else
    ``where``), and why."""
    from runspec.measure.files import os_reason

    named = [n for n in (error.filename2, error.filename) if isinstance(n, str) and n]
    place = named[0] if named else where  # a rename's: where it was going
    reason, hint = os_reason(error), "make that a writable directory"
    if place is not None and error.errno in (errno.ENOTDIR, errno.EEXIST):
        blocking = _in_the_way(Path(place))
        if blocking is not None:
            place, kind = blocking
            reason += f": {kind} is where a directory must be"
            hint = "move it away"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free space on its disk"
    shown = f" ({place})" if place is not None and str(place) != str(root) else ""
    return ArtifactError(f"cannot write the artifact registry at {root}{shown}: {reason}",
                         f"{hint} (nothing was registered), or set [artifacts] root in "
                         "env.toml to a writable place")


def _in_the_way(path: Path) -> tuple[Path, str] | None:
    """The nearest of ``path`` and its parents that exists, if it is no directory: what
    stops a directory being made there (a file, a link), and what it is."""
    import stat

    for candidate in (path, *path.parents):
        try:
            mode = candidate.lstat().st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode) or (stat.S_ISLNK(mode) and candidate.is_dir()):
            return None
        return candidate, "a symbolic link" if stat.S_ISLNK(mode) else "a file"
    return None


def _unreadable(name: str, source: Path, error: OSError) -> ArtifactError:
    """``source`` (or a file in it) cannot be read: nothing of it was registered."""
    from runspec.measure.files import os_reason

    place = error.filename if isinstance(error.filename, str) and error.filename else source
    inside = str(place) != str(source)
    return ArtifactError(f'cannot publish "{name}": cannot read {place}: {os_reason(error)}',
                         (f"make it readable, or remove it from {source}" if inside
                          else "publish a readable file or directory")
                         + "; nothing was registered")


def _is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


# -- the registry ---------------------------------------------------------------------------

class Registry:
    def __init__(self, root: str | Path):
        text = str(root)
        self.store: _LocalStore | _UrlStore
        if _is_url(text):
            self.store = _UrlStore(text)
            self.root: Path | str = text
        else:
            path = Path(os.path.abspath(os.path.expanduser(text.removeprefix("file://"))))
            self.store = _LocalStore(path)
            self.root = path
        self._produced: dict[str, dict[str, Version]] = {}

    # -- reading -----------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(n for n in self.store.children("")
                      if _NAME.fullmatch(n) and self.versions(n))

    def versions(self, name: str) -> list[int]:
        return sorted(int(n[1:]) for n in self.store.children(name)
                      if n[:1] == "v" and n[1:].isdigit()
                      and self.store.exists(f"{name}/{n}/metadata.json"))

    def aliases(self, name: str) -> dict[str, int]:
        aliases = self.store.read_json(f"{name}/aliases.json") or {}
        numbers = self.versions(name)
        if numbers and "latest" not in aliases:
            aliases["latest"] = numbers[-1]
        return aliases

    def get(self, name: str, number: int) -> Version:
        metadata = self.store.read_json(f"{name}/v{number}/metadata.json")
        if not isinstance(metadata, dict):
            raise self._missing(name, f"v{number}")
        return Version(name, number, metadata)

    def resolve(self, ref: ArtifactRef) -> Version:
        if ref.version is not None:
            return self.get(ref.name, ref.version)
        aliases = self.aliases(ref.name)
        if ref.alias not in aliases:
            raise self._missing(ref.name, ref.alias or "latest")
        return self.get(ref.name, aliases[ref.alias])

    def tree(self, version: Version, of: str = "path") -> Tree | None:
        """The files a version registered: of its ``path``, or of its ``source`` (what was
        copied, with the source's stat fields)."""
        name = "source.json" if of == "source" and version.metadata.get("mode") == Mode.COPY \
            else "files.json"
        return Tree.from_json(self.store.read_json(f"{version.name}/v{version.number}/{name}"))

    def _missing(self, name: str, tag: str) -> ArtifactError:
        numbers = self.versions(name)
        if not numbers:
            known = self.names()
            from runspec.manifest.suggest import did_you_mean

            return ArtifactError(f'no artifact "{name}" in the registry at {self.root}',
                                 did_you_mean(name, known) or
                                 (f"artifacts: {', '.join(known)}" if known else
                                  "the registry is empty: a run's outputs.artifacts publish one"))
        aliases = ", ".join(f"{a} → v{n}" for a, n in sorted(self.aliases(name).items()))
        return ArtifactError(f'artifact "{name}" has no version or alias "{tag}"',
                             f"versions: {', '.join(f'v{n}' for n in numbers)}; aliases: {aliases}")

    # -- checking ----------------------------------------------------------------------------
    def drift(self, version: Version, of: str = "path") -> list[str]:
        """How a version's data differs from what was registered (empty: it matches).
        ``of = "source"``: the place it was published from, which a stage downstream in
        the same manifest reads. Data on a cluster (``host``) is not checked from here."""
        if version.metadata.get("host"):
            return []
        try:
            return self._drift(version, of)
        except OSError as error:  # a file that cannot be read cannot be shown to match
            from runspec.measure.files import os_reason

            where = error.filename if isinstance(error.filename, str) and error.filename \
                else (version.source if of == "source" else version.path)
            return [f"cannot read {where}: {os_reason(error)}"]

    def _drift(self, version: Version, of: str) -> list[str]:
        where = version.source if of == "source" else version.path
        copied = version.metadata.get("mode") == Mode.COPY
        tree = self.tree(version, of)
        if tree is not None:
            if copied and of != "source" and version.metadata.get("object"):
                return self.store.check(version.metadata["object"], tree)
            return changes(Path(where), tree)
        digest = version.metadata.get("digest")  # registered by runspec ≤ 0.2
        if not isinstance(digest, str) or _is_url(where):
            return []
        if not Path(where).exists():
            return [f"{where} no longer exists"]
        now = legacy_digest(Path(where)) if scheme_of(digest) == Scheme.LEGACY else \
            scan(Path(where), scheme_of(digest)).digest
        return [] if now == digest else ["its content changed"]

    # -- writing -----------------------------------------------------------------------------
    def publish(self, name: str, path: str | Path, type_: str, producer: str | None = None,
                inputs: dict[str, Any] | None = None, aliases: tuple[str, ...] = ("latest",),
                extra: dict | None = None, remote: tuple[str, str] | None = None,
                mode: Mode = Mode.REFERENCE, best: BestBy | None = None,
                metrics: dict[str, Any] | None = None,
                fields: dict[str, Any] | None = None) -> Version:
        """Register ``path`` as the next version of ``name`` and move ``aliases`` to it.
        ``mode``: copy it into the registry, reference it in place (this API's default,
        as before modes existed), or ``AUTO``: copy up to ``COPY_LIMIT`` (what outputs and
        ``runspec artifacts publish`` do unless told). ``extra`` adds metadata fields (e.g. ``wandb``: the W&B artifact it
        was logged as). ``remote``: ``(host, digest)`` of a path that is on a cluster, not
        here (a run over SSH): referenced as the cluster sees it, with the digest computed
        there. ``best``: move the ``best`` alias here when ``metrics`` (the producing run's)
        beat those of the version it names. ``fields``: the producer's own metadata (checked
        by the caller against its type, see ``artifacts.types``), kept apart from runspec's."""
        if not _NAME.fullmatch(name):
            raise ArtifactError(f'"{name}" is not an artifact name',
                                "use letters, digits, '.', '_' and '-' (it goes into art://NAME)")
        source = Path(path)
        files: Tree | None = None
        source_files: Tree | None = None
        stored: dict[str, str] = {}
        if remote is not None:
            host, digest = remote
            extra = {**(extra or {}), "host": host}
            location, chosen = str(path), Mode.REFERENCE
        elif not source.exists():
            raise ArtifactError(f'cannot publish "{name}": {source} does not exist')
        else:
            source = source.resolve()
            chosen = mode if mode != Mode.AUTO else (
                Mode.COPY if _size(source) <= COPY_LIMIT else Mode.REFERENCE)
            try:
                if chosen == Mode.COPY:
                    key, files, source_files = self.store.put(source)
                    location, stored = self.store.location(key), {"object": key}
                else:
                    files = scan(source)
                    location = str(source)
            except Unreadable as error:  # the source's (the store's own: ArtifactError)
                raise _unreadable(name, source, error) from None
            except OSError as error:
                raise (_unwritable(self.root, error) if chosen == Mode.COPY
                       else _unreadable(name, source, error)) from None
            digest = files.digest
        metadata = {"name": name, "type": type_, "mode": str(chosen), "path": location,
                    "source": str(source), **stored, "digest": digest,
                    **({"size": files.size, "files": len(files.files)} if files else {}),
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "producer": producer, "inputs": inputs or {},
                    **({"metrics": metrics} if metrics else {}), **(extra or {}),
                    **({"fields": fields} if fields else {})}
        with self.store.locked(name):
            number = (self.versions(name) or [0])[-1] + 1
            metadata["version"] = number
            here = f"{name}/v{number}"
            if files is not None:
                self.store.write_json(f"{here}/files.json", files.to_json())
            if source_files is not None:
                self.store.write_json(f"{here}/source.json", source_files.to_json())
            self.store.write_json(f"{here}/metadata.json", metadata)  # the version exists
            current = self.store.read_json(f"{name}/aliases.json") or {}
            current.update({alias: number for alias in aliases})
            if best is not None and self._beats(name, current.get(BEST), best, metrics):
                current[BEST] = number
            self.store.write_json(f"{name}/aliases.json", current)
        self._produced.pop(name, None)
        return Version(name, number, metadata)

    def _beats(self, name: str, holder: int | None, best: BestBy,
               metrics: dict[str, Any] | None) -> bool:
        value = (metrics or {}).get(best.metric)
        if not isinstance(value, int | float) or not _number(value):
            return False
        if holder is None:
            return True
        try:
            held = (self.get(name, holder).metadata.get("metrics") or {}).get(best.metric)
        except ArtifactError:
            return True
        return not isinstance(held, int | float) or not _number(held) or \
            best.better(float(value), float(held))

    def set_alias(self, name: str, alias: str, number: int) -> int | None:
        """Point ``alias`` at version ``number``; returns the version it named before."""
        if not _ALIAS.fullmatch(alias) or re.fullmatch(r"v\d+", alias):
            raise ArtifactError(f'"{alias}" is not an alias name',
                                "use a letter, then letters, digits, '.', '_' or '-' "
                                "(not vN: that names a version)")
        self.get(name, number)
        with self.store.locked(name):
            current = self.store.read_json(f"{name}/aliases.json") or {}
            before = current.get(alias)
            if before is None and alias == "latest":
                before = max(self.versions(name), default=None)
            current[alias] = number
            self.store.write_json(f"{name}/aliases.json", current)
        return before

    # -- lineage -----------------------------------------------------------------------------
    def produced_by(self, name: str, producer: str) -> Version | None:
        """The newest version of ``name`` that run ``producer`` registered, if any (one
        pass over the versions per name, however many runs ask)."""
        if name not in self._produced:
            newest: dict[str, Version] = {}
            for number in self.versions(name):
                try:
                    version = self.get(name, number)
                except ArtifactError:
                    continue
                by = version.metadata.get("producer")
                if isinstance(by, str):
                    newest[by] = version
            self._produced[name] = newest
        return self._produced[name].get(producer)

    def lineage(self, version: Version, seen: set[str] | None = None) -> dict[str, Any]:
        """``{"label", "producer", "inputs": [lineage of each input]}``; a plain file or
        directory input is a leaf with its path and digest."""
        seen = seen or set()
        inputs: list[dict[str, Any]] = []
        node = {"label": version.label, "type": version.metadata.get("type"),
                "producer": version.metadata.get("producer"), "inputs": inputs}
        if version.label in seen:
            return node
        seen.add(version.label)
        recorded = version.metadata.get("inputs") or {}
        for _, entry in sorted(recorded.items(), key=lambda item: _input_order(item[1])):
            if isinstance(entry, dict):  # a plain path (or URL) the run read
                inputs.append({"label": entry.get("path") or entry.get("uri") or "?",
                               "plain": True, "digest": entry.get("digest"), "inputs": []})
                continue
            name, _, tag = str(entry).partition(":v")
            try:
                inputs.append(self.lineage(self.get(name, int(tag)), seen))
            except (ArtifactError, ValueError):
                inputs.append({"label": str(entry), "missing": True, "inputs": []})
        return node


def _input_order(entry: Any) -> tuple[int, str]:
    """Registry versions first, then plain paths, each by name."""
    if isinstance(entry, dict):
        return 1, str(entry.get("path") or entry.get("uri") or "")
    return 0, str(entry)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for directory, _, names in os.walk(path):
        for name in names:
            try:
                total += Path(directory, name).stat().st_size
            except OSError:
                continue
            if total > COPY_LIMIT:
                return total
    return total


# -- where the registry is ------------------------------------------------------------------

def registry_root(env_data: dict[str, Any] | None, env_path: Path | None = None,
                  start: Path | None = None) -> str:
    """Where the registry of a project is: ``$RUNSPEC_ARTIFACTS`` (an override, e.g. for
    CI), else env.toml's ``[artifacts] root`` (a path, relative to env.toml, or an fsspec
    URL), else ``.runspec/artifacts`` in the project: beside env.toml, else at the git
    root, else in ``start`` (the manifest's directory). Never per user: one project's
    versions must not number another's."""
    override = os.environ.get(ENV_VARIABLE)
    if override:
        return _normalized(override, Path.cwd())
    configured = ((env_data or {}).get("artifacts") or {}).get("root")
    if isinstance(configured, str) and configured:
        base = env_path.resolve().parent if env_path is not None else (start or Path.cwd())
        return _normalized(configured, base)
    return str(project_dir(env_path, start) / DEFAULT_DIR)


def project_dir(env_path: Path | None, start: Path | None) -> Path:
    """The directory holding env.toml, else the git root above ``start``, else ``start``."""
    if env_path is not None:
        return env_path.resolve().parent
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return here


def _normalized(text: str, base: Path) -> str:
    """A path made absolute against ``base`` (``~`` expanded); ``file://`` is a path."""
    text = text.removeprefix("file://") if text.startswith("file://") else text
    if _is_url(text):
        return text
    path = Path(os.path.expanduser(text))
    return str(path if path.is_absolute() else (base / path).resolve())


def configured_mode(env_data: dict[str, Any] | None) -> Mode | None:
    """env.toml's ``[artifacts] mode``: the project's default for its outputs."""
    value = ((env_data or {}).get("artifacts") or {}).get("mode")
    return Mode(value) if value in (Mode.COPY, Mode.REFERENCE) else None
