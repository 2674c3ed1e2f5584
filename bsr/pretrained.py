"""Pretrained checkpoints: a small registry, a careful downloader and a one-call loader.

The registry (``bsr/pretrained.yaml``) lists checkpoints that people share, with where to
get them, the checksum their publisher gives (or ``null`` when there is none), the model
config they need and where those facts come from. Three functions use it::

    print(list_entries())                      # what is there
    path = download("viperx-vocals-ep317")     # fetch once into the cache
    model = load_pretrained("viperx-vocals-ep317")

Downloading is written to be boring and safe:

* the file streams into a temporary file beside its final place and is renamed only once
  its sha256 matches, so the cache never holds half a download or a corrupt file;
* a cached file whose checksum still matches is reused without touching the network;
* when no checksum is published we say so (:class:`UnverifiedDownload`), record the
  sha256 we computed next to the file (``FILE.sha256``), and ``require_checksum=True``
  refuses such entries outright;
* every failure is one line that says what to do, including how to fetch the file by
  hand when there is no network.

The cache lives in ``$BSR_CACHE`` or ``~/.cache/bsr``, one folder per entry.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from bsr.errors import BsrError

if TYPE_CHECKING:  # the model pulls in torch: import it only when a model is loaded
    from bsr.model import BSRoformer

REGISTRY = resources.files("bsr") / "pretrained.yaml"
FORMATS = ("bsr", "community")
REQUIRED = ("name", "description", "url", "sha256", "config", "format", "licence", "source")
OPTIONAL = ("size",)
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20  # bytes per read: large enough to be fast, small enough for a smooth bar


class UnverifiedDownload(UserWarning):
    """A file was used whose publisher gives no checksum to check it against."""


# ---------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class RemoteConfig:
    """A YAML config to download next to the checkpoint, and its checksum (None: unknown)."""

    url: str
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return _filename(self.url)


@dataclass(frozen=True)
class Entry:
    """One registry entry. ``config``: preset name, inline ZFTurbo mapping, or RemoteConfig."""

    name: str
    description: str
    url: str
    sha256: str | None
    config: str | dict | RemoteConfig | None
    format: str
    licence: str
    source: str
    size: int | None = None

    @property
    def filename(self) -> str:
        """The checkpoint's file name, taken from its URL."""
        return _filename(self.url)


def _filename(url: str) -> str:
    """The last path segment of a URL, ``%20`` and friends decoded."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


class _Checker:
    """Validates one entry; every problem becomes a one-line BsrError naming the entry."""

    def __init__(self, where: str, index: int, raw: Any):
        self.raw = raw
        name = raw.get("name") if isinstance(raw, dict) else None
        self.label = f"{where} entry {index + 1}" + (f" ({name})" if isinstance(name, str) else "")

    def fail(self, problem: str) -> NoReturn:
        raise BsrError(f"{self.label}: {problem}: fix the registry")

    def text(self, key: str) -> str:
        value = self.raw[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{key} must be non-empty text, got {value!r}")
        return value.strip()

    def url(self, value: Any, key: str, file: bool = True) -> str:
        parts = urllib.parse.urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            self.fail(f"{key} must be an http(s) URL, got {value!r}")
        name = _filename(value)
        if file and (not name or name in (".", "..") or "/" in name or "\\" in name):
            # the cache stores the file under this name: it must stay inside the cache
            self.fail(f"{key} {value!r} does not end in a plain file name")
        return value

    def checksum(self, value: Any, key: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not SHA256.fullmatch(value.lower()):
            self.fail(f"{key} must be 64 hex digits or null, got {value!r}")
        return value.lower()


def _check_entry(raw: Any, index: int, where: str) -> Entry:
    """A validated :class:`Entry` from one parsed YAML item."""
    check = _Checker(where, index, raw)
    if not isinstance(raw, dict):
        check.fail(f"expected a mapping of {', '.join(REQUIRED)}, got {type(raw).__name__}")
    for key in REQUIRED:
        if key not in raw:
            check.fail(f"missing '{key}' (write '{key}: null' if it is unknown)")
    for key in raw:
        if key not in REQUIRED + OPTIONAL:
            check.fail(f"unknown key '{key}' (known: {', '.join(REQUIRED + OPTIONAL)})")
    name = check.text("name")
    if not NAME.fullmatch(name):
        check.fail(f"name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
    fmt = check.text("format")
    if fmt not in FORMATS:
        check.fail(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        check.fail(f"size must be a positive number of bytes or null, got {size!r}")
    return Entry(
        name=name,
        description=" ".join(check.text("description").split()),
        url=check.url(raw["url"], "url"),
        sha256=check.checksum(raw["sha256"], "sha256"),
        config=_check_config(check, raw["config"], fmt),
        format=fmt,
        licence=check.text("licence"),
        source=check.url(raw["source"], "source", file=False),
        size=size,
    )


def _check_config(check: _Checker, value: Any, fmt: str):
    """The entry's config: a preset name, an inline ZFTurbo mapping, or a RemoteConfig."""
    from bsr.community import config_from_zfturbo
    from bsr.config import list_presets

    if value is None:
        if fmt == "community":  # a state dict does not record its architecture
            check.fail("a community checkpoint needs a config (preset, inline or url)")
        return None
    if isinstance(value, str):
        if value not in list_presets():
            check.fail(f"config {value!r} is not a preset ({', '.join(list_presets())})")
        return value
    if isinstance(value, dict) and "url" in value:
        extra = set(value) - {"url", "sha256"}
        if extra or "sha256" not in value:
            check.fail("a config download needs exactly 'url' and 'sha256' (null if unknown)")
        url = check.url(value["url"], "config.url")
        if _filename(url) == _filename(check.raw["url"]):  # both live in the entry's folder
            check.fail("config.url and url end in the same file name")
        return RemoteConfig(url, check.checksum(value["sha256"], "config.sha256"))
    if isinstance(value, dict) and isinstance(value.get("model"), dict):
        try:
            config_from_zfturbo(value)  # fail now, not after a 600 MB download
        except BsrError as error:
            check.fail(f"config: {error}")
        return value
    check.fail("config must be a preset name, a mapping with 'model:', or {url:, sha256:}")


def load_registry(path: str | Path | None = None) -> list[Entry]:
    """The entries of a registry YAML (default: the one shipped with bsr), validated."""
    if path is None:
        where, text = "bsr/pretrained.yaml", REGISTRY.read_text(encoding="utf-8")
    else:
        path = Path(path)
        if not path.is_file():
            raise BsrError(f"registry {path} not found: check the path")
        where, text = str(path), path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0]
        raise BsrError(f"registry {where} is not valid YAML ({first}): fix the file") from None
    if not isinstance(data, list):
        raise BsrError(f"registry {where} must be a YAML list of entries ('- name: ...')")
    entries = [_check_entry(raw, i, where) for i, raw in enumerate(data)]
    names = [entry.name for entry in entries]
    for name in names:
        if names.count(name) > 1:
            raise BsrError(f"registry {where} lists {name!r} twice: give each entry its own name")
    return entries


def _entries(registry: str | Path | Sequence[Entry] | None) -> list[Entry]:
    """Entries from a registry path, an already-loaded list, or the shipped registry."""
    if registry is None or isinstance(registry, (str, Path)):
        return load_registry(registry)
    return list(registry)


def find_entry(name: str, registry: str | Path | Sequence[Entry] | None = None) -> Entry:
    """The entry called ``name``, or a BsrError that lists the available names."""
    entries = _entries(registry)
    for entry in entries:
        if entry.name == name:
            return entry
    available = ", ".join(entry.name for entry in entries) or "none"
    raise BsrError(f"no pretrained model {name!r}: choose one of {available}")


# ---------------------------------------------------------------------------- the cache


def cache_dir() -> Path:
    """Where downloads go: ``$BSR_CACHE`` if set, else ``~/.cache/bsr``."""
    folder = os.environ.get("BSR_CACHE")
    return Path(folder).expanduser() if folder else Path.home() / ".cache" / "bsr"


def cached_path(entry: Entry, cache: str | Path | None = None) -> Path:
    """Where ``entry``'s checkpoint lives in the cache (whether or not it is there yet)."""
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    return root / entry.name / entry.filename


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in chunks (checkpoints can be larger than memory likes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _record_path(path: Path) -> Path:
    """``FILE.sha256``: the checksum bsr computed for a file that has no published one."""
    return path.with_name(path.name + ".sha256")


def _record(path: Path, digest: str) -> None:
    """Write ``FILE.sha256`` in ``sha256sum`` format, so ``sha256sum -c`` can check it."""
    _record_path(path).write_text(f"{digest}  {path.name}\n")


def _recorded(path: Path) -> str | None:
    """The checksum recorded beside ``path``, or None when there is no readable record."""
    try:
        first = _record_path(path).read_text().split()
    except OSError:
        return None
    return first[0] if first and SHA256.fullmatch(first[0]) else None


def _warn_unverified(what: str, path: Path, digest: str, source: str) -> None:
    warnings.warn(
        f"{what} has no published checksum: verify the source ({source}); sha256 {digest} "
        f"recorded in {_record_path(path)}",
        UnverifiedDownload,
        stacklevel=3,
    )


def _reusable(path: Path, expected: str | None, what: str, source: str) -> bool:
    """Can the cached ``path`` be used as is? (No network either way.)

    With a published checksum the file must match it. Without one it must match the
    checksum recorded when it was downloaded; a file put there by hand (no record) is
    accepted, and its checksum recorded, with a warning.
    """
    if not path.is_file():
        return False
    digest = sha256_file(path)
    if expected is not None:
        return digest == expected
    recorded = _recorded(path)
    if recorded is not None and recorded != digest:
        return False  # changed since we downloaded it: fetch a fresh copy
    if recorded is None:
        _record(path, digest)
    _warn_unverified(what, path, digest, source)
    return True


# ---------------------------------------------------------------------------- downloading


class _NetworkFailure(Exception):
    """Raised inside a download when the network, not the disk, let us down."""


def _reason(error: BaseException) -> str:
    """A short, one-line reason (URLError keeps it in ``.reason``)."""
    reason = getattr(error, "reason", None) or error
    text = str(reason).strip() or type(reason).__name__
    return text.splitlines()[0][:120]


def _open(url: str, timeout: float):
    """``urlopen`` with bsr's User-Agent; HTTP errors pass through, others are network ones."""
    from bsr import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"bsr/{__version__}"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets
        raise _NetworkFailure(_reason(error)) from error


def _stream(response, out, label: str, total: int | None, progress: bool):
    """Copy the response body into ``out``; returns (bytes, sha256). Network errors wrapped."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    done = 0
    with tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress
    ) as bar:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as error:
                raise _NetworkFailure(_reason(error)) from error
            if not chunk:
                break
            out.write(chunk)  # a disk error here stays an OSError: it is not the network
            digest.update(chunk)
            done += len(chunk)
            bar.update(len(chunk))
    if total is not None and done < total:  # http.client does not always notice a cut
        raise _NetworkFailure(f"the connection closed after {done} of {total} bytes")
    return done, digest.hexdigest()


def _fetch(url: str, dest: Path, timeout: float, progress: bool) -> tuple[Path, str, int]:
    """Download ``url`` to a temporary file beside ``dest``: (temp path, sha256, bytes).

    The caller renames the temporary file into place after checking it. On any failure
    the temporary file is removed, so a cache folder never holds a partial download.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, _open(url, timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            size, digest = _stream(response, out, dest.name, total, progress)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), digest, size


def _download_file(
    url: str,
    dest: Path,
    expected: str | None,
    *,
    what: str,
    source: str,
    size: int | None = None,
    timeout: float = 30,
    progress: bool = True,
) -> Path:
    """Make ``dest`` hold the file at ``url`` (checked against ``expected``); return it."""
    if _reusable(dest, expected, what, source):
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BsrError(
            f"cannot create the cache folder {dest.parent} ({_reason(error)}): "
            "set BSR_CACHE to a folder you can write to"
        ) from None
    try:
        tmp, digest, got = _fetch(url, dest, timeout, progress)
    except urllib.error.HTTPError as error:
        raise BsrError(
            f"downloading {what} failed: {url} answered HTTP {error.code} {error.reason}: "
            f"the file may have moved: report it, or download it by hand into {dest}"
        ) from None
    except _NetworkFailure as error:
        raise BsrError(
            f"downloading {what} needs network access ({error}): download {url} by hand into {dest}"
        ) from None
    problem = None
    if expected is not None and digest != expected:
        problem = f"checksum mismatch for {what}: got sha256 {digest}, expected {expected}"
    elif size is not None and got != size:
        problem = f"size mismatch for {what}: got {got} bytes, expected {size}"
    if problem:
        tmp.unlink(missing_ok=True)
        raise BsrError(
            f"{problem}: the download is corrupt or the file changed: try again or report it"
        )
    os.replace(tmp, dest)  # atomic on one file system: the cache sees all of it or nothing
    if expected is None:
        _record(dest, digest)
        _warn_unverified(what, dest, digest, source)
    return dest


def _refuse_unverified(entry: Entry) -> None:
    """``require_checksum``: refuse an entry whose checkpoint or config has no checksum."""
    missing = []
    if entry.sha256 is None:
        missing.append("checkpoint")
    if isinstance(entry.config, RemoteConfig) and entry.config.sha256 is None:
        missing.append("config")
    if missing:
        raise BsrError(
            f"{entry.name} has no published sha256 for its {' and '.join(missing)}: verify "
            f"the source ({entry.source}) and drop --require-checksum (require_checksum=True) "
            "to download it anyway"
        )


def download(
    name: str,
    cache: str | Path | None = None,
    registry: str | Path | Sequence[Entry] | None = None,
    timeout: float = 30,
    progress: bool = True,
    require_checksum: bool = False,
) -> Path:
    """Download the checkpoint ``name`` into the cache (once) and return its path.

    ``timeout`` bounds each network wait in seconds. Entries without a published checksum
    download with an :class:`UnverifiedDownload` warning unless ``require_checksum``.
    """
    entry = find_entry(name, registry)
    if require_checksum:
        _refuse_unverified(entry)
    return _download_file(
        entry.url,
        cached_path(entry, cache),
        entry.sha256,
        what=entry.name,
        source=entry.source,
        size=entry.size,
        timeout=timeout,
        progress=progress,
    )


# ---------------------------------------------------------------------------- loading


def _config_for(entry: Entry, cache, timeout: float, progress: bool):
    """What :func:`bsr.checkpoint.load_model` takes as ``config`` for this entry.

    An inline ZFTurbo mapping goes as it is: its ``audio.chunk_size`` and
    ``inference.num_overlap`` then set the model's separation windows, as a YAML file does.
    """
    if isinstance(entry.config, dict):
        return entry.config
    if isinstance(entry.config, RemoteConfig):
        dest = cached_path(entry, cache).with_name(entry.config.filename)
        return _download_file(
            entry.config.url,
            dest,
            entry.config.sha256,
            what=f"{entry.name}'s config",
            source=entry.source,
            timeout=timeout,
            progress=False,  # a few kilobytes: a bar would only flicker
        )
    return entry.config  # a preset name, or None for a bsr checkpoint


def load_pretrained(
    name: str,
    cache: str | Path | None = None,
    registry: str | Path | Sequence[Entry] | None = None,
    device: str = "cpu",
    timeout: float = 30,
    progress: bool = True,
    require_checksum: bool = False,
) -> BSRoformer:
    """Download (if needed) and load the pretrained separator ``name``, in eval mode."""
    from bsr.checkpoint import load_model

    entry = find_entry(name, registry)
    path = download(name, cache, [entry], timeout, progress, require_checksum)
    config = _config_for(entry, cache, timeout, progress)
    return load_model(path, config=config, device=device)


# ---------------------------------------------------------------------------- listing


def list_entries(
    registry: str | Path | Sequence[Entry] | None = None, cache: str | Path | None = None
) -> str:
    """The registry as text for ``bsr pretrained list``: name, what it is, where from."""
    entries = _entries(registry)
    if not entries:
        return "no pretrained models in the registry"
    from bsr.community import load_zfturbo

    lines = []
    for entry in entries:
        cached = "cached" if cached_path(entry, cache).is_file() else "not downloaded"
        checksum = "sha256 published" if entry.sha256 else "no published checksum"
        kind = entry.format
        if isinstance(entry.config, dict):  # an inline config says which network it is
            kind += f" {load_zfturbo(entry.config).model_type}"
        lines += [
            f"{entry.name}  ({kind}, {checksum}, {cached})",
            f"    {entry.description}",
            f"    licence: {entry.licence}",
            f"    source:  {entry.source}",
        ]
    lines.append(f"cache: {Path(cache) if cache is not None else cache_dir()}")
    return "\n".join(lines)
