"""The registry of shared checkpoints (``bsr/pretrained.yaml``), read and checked.

Each entry says where to get a checkpoint, the checksum its publisher gives (or ``null``
when there is none), the model config it needs, its licence and where those facts come
from. :func:`load_registry` checks every entry when it reads the file, so a mistake in the
registry is one line naming the entry, never a failure after a 600 MB download.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import yaml

from bsr.errors import BsrError
from bsr.pretrained.download import SHA256, cache_dir

REGISTRY = resources.files("bsr") / "pretrained.yaml"
FORMATS = ("bsr", "community")
REQUIRED = ("name", "description", "url", "sha256", "config", "format", "licence", "source")
OPTIONAL = ("size",)
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


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
    from bsr.config import list_presets
    from bsr.formats.zfturbo import config_from_zfturbo

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
    """The entries of a registry YAML, validated.

    Default: ``$BSR_REGISTRY`` when set (a class's own list, a test's), else the registry
    shipped with bsr.
    """
    path = path if path is not None else os.environ.get("BSR_REGISTRY") or None
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


def cached_path(entry: Entry, cache: str | Path | None = None) -> Path:
    """Where ``entry``'s checkpoint lives in the cache (whether or not it is there yet)."""
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    return root / entry.name / entry.filename


def list_entries(
    registry: str | Path | Sequence[Entry] | None = None, cache: str | Path | None = None
) -> str:
    """The registry as text for ``bsr pretrained list``: name, what it is, where from."""
    entries = _entries(registry)
    if not entries:
        return "no pretrained models in the registry"
    from bsr.formats.zfturbo import load_zfturbo

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
