"""Pretrained checkpoints: a small registry, a careful downloader and a one-call loader.

The registry (``bsr/pretrained.yaml``, read by :mod:`bsr.pretrained.registry`) lists
checkpoints that people share; :mod:`bsr.pretrained.download` fetches files into the cache
and checks them. Three functions put the two together::

    print(list_entries())                      # what is there
    path = download("viperx-vocals-ep317")     # fetch once into the cache
    model = load_pretrained("viperx-vocals-ep317")

``require_checksum=True`` refuses entries whose publisher gives no checksum. The cache
lives in ``$BSR_CACHE`` or the course folder's ``downloads/``, one folder per entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bsr.errors import BsrError
from bsr.pretrained.download import UnverifiedDownload, cache_dir, download_file, sha256_file
from bsr.pretrained.registry import (
    Entry,
    RemoteConfig,
    cached_path,
    find_entry,
    list_entries,
    load_registry,
)

if TYPE_CHECKING:  # the model pulls in torch: import it only when a model is loaded
    from bsr.model import BSRoformer

__all__ = [
    "Entry",
    "RemoteConfig",
    "UnverifiedDownload",
    "cache_dir",
    "cached_path",
    "download",
    "download_file",
    "find_entry",
    "list_entries",
    "load_pretrained",
    "load_registry",
    "sha256_file",
]


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
    return download_file(
        entry.url,
        cached_path(entry, cache),
        entry.sha256,
        what=entry.name,
        source=entry.source,
        size=entry.size,
        timeout=timeout,
        progress=progress,
    )


def _config_for(entry: Entry, cache, timeout: float, progress: bool):
    """What :func:`bsr.formats.load_model` takes as ``config`` for this entry.

    An inline ZFTurbo mapping goes as it is: its ``audio.chunk_size`` and
    ``inference.num_overlap`` then set the model's separation windows, as a YAML file does.
    """
    if isinstance(entry.config, dict):
        return entry.config
    if isinstance(entry.config, RemoteConfig):
        dest = cached_path(entry, cache).with_name(entry.config.filename)
        return download_file(
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
    from bsr.formats import load_model

    entry = find_entry(name, registry)
    path = download(name, cache, [entry], timeout, progress, require_checksum)
    config = _config_for(entry, cache, timeout, progress)
    return load_model(path, config=config, device=device)
