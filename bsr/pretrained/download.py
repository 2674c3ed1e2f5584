"""A checked downloader and the cache it fills; it knows nothing of the registry.

Downloading is written to be boring and safe:

* the file streams into a temporary file beside its final place and is renamed only once
  its sha256 matches, so the cache never holds half a download or a corrupt file;
* a cached file whose checksum still matches is reused without touching the network;
* when no checksum is published we say so (:class:`UnverifiedDownload`) and record the
  sha256 we computed next to the file (``FILE.sha256``);
* every failure is one line that says what to do, including how to fetch the file by
  hand when there is no network.

The cache lives in ``$BSR_CACHE`` or in the course folder's ``downloads/``
(:mod:`bsr.home`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from bsr.errors import BsrError
from bsr.home import course_folder

SHA256 = re.compile(r"[0-9a-f]{64}")
"""A sha256 as 64 lower-case hex digits."""
CHUNK = 1 << 20  # bytes per read: large enough to be fast, small enough for a smooth bar


class UnverifiedDownload(UserWarning):
    """A file was used whose publisher gives no checksum to check it against."""


def cache_dir() -> Path:
    """Where downloads go: ``$BSR_CACHE`` if set, else the course folder's ``downloads/``."""
    folder = os.environ.get("BSR_CACHE")
    return Path(folder).expanduser() if folder else course_folder("downloads")


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


class _NetworkFailure(Exception):
    """Raised inside a download when the network, not the disk, let us down."""


def _reason(error: BaseException) -> str:
    """A short, one-line reason (URLError keeps it in ``.reason``)."""
    reason = getattr(error, "reason", None) or error
    text = str(reason).strip() or type(reason).__name__
    return text.splitlines()[0][:120]


def _open(url: str, timeout: float):
    """``urlopen`` with bsr's User-Agent; HTTP errors pass through, others are network ones."""
    from bsr._version import __version__

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


def download_file(
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
    """Make ``dest`` hold the file at ``url`` (checked against ``expected``); return it.

    A file already at ``dest`` that passes the check is reused without the network.
    ``expected`` is the published sha256 (None: unknown; the one computed is recorded in
    ``FILE.sha256`` with an :class:`UnverifiedDownload` warning), ``size`` the published
    size in bytes if any; ``what`` and ``source`` name the file in messages.
    """
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
