"""Downloading data files with checksum verification, and a clear error when offline.

The loaders call :func:`fetch` for each file they need; archives are then unpacked
with torchvision's :func:`~torchvision.datasets.utils.extract_archive`. Tests point
the URLs at a local ``http.server`` on 127.0.0.1, so nothing here needs the internet
to be tested.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .._checks import check_choice

USER_AGENT = "segtutor (+https://github.com/segtutor/segtutor)"
_CHUNK_BYTES = 1 << 20
_ALGORITHMS = ("md5", "sha256")


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file's bytes, ``algorithm`` being ``"md5"`` or ``"sha256"``."""
    _check_algorithm(algorithm)
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str,
    destination: Path,
    *,
    checksum: tuple[str, str],
    progress: bool = False,
) -> Path:
    """Download ``url`` to ``destination`` unless a file with the right checksum is there.

    The file is written to ``destination`` + ``".part"`` first and renamed only once
    its checksum matches, so an interrupted or corrupt download never looks complete.

    Args:
        url: ``https://``, ``http://`` or ``file://`` address.
        destination: where the file goes; missing folders are created.
        checksum: ``(algorithm, hex digest)``, e.g. ``("sha256", "12c0...")``.
        progress: show a tqdm progress bar for this file.

    Returns:
        ``destination``.

    Raises:
        ConnectionError: the server cannot be reached (no network); the message says
            where to place the file by hand.
        FileNotFoundError: the server answered but does not have ``url`` (HTTP error), or
            a ``file://`` URL names a missing file.
        ValueError: the downloaded bytes do not match ``checksum``, or an unknown algorithm.
    """
    algorithm, expected = checksum
    _check_algorithm(algorithm)
    destination = Path(destination)
    if destination.is_file() and file_digest(destination, algorithm) == expected:
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        _stream_to_file(url, partial, progress)
    except urllib.error.HTTPError as error:
        raise FileNotFoundError(
            f"{url} answered HTTP {error.code} ({error.reason}); the file may have moved. "
            f"Place it at {destination} by hand."
        ) from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, FileNotFoundError):  # a file:// URL to a missing file
            raise FileNotFoundError(f"{url} does not exist ({error.reason})") from error
        raise ConnectionError(
            f"no network: could not download {url} ({error.reason}). "
            f"Download it elsewhere and place the file at {destination}."
        ) from error
    actual = file_digest(partial, algorithm)
    if actual != expected:
        partial.unlink()
        raise ValueError(
            f"checksum mismatch for {url}: {algorithm} is {actual}, expected {expected}; "
            f"the download is corrupt or the file changed on the server (nothing was kept)"
        )
    partial.replace(destination)
    return destination


def _check_algorithm(algorithm: str) -> None:
    check_choice(algorithm, "checksum algorithm", _ALGORITHMS)


def _stream_to_file(url: str, path: Path, progress: bool) -> None:
    """Copy ``url`` into ``path``; on any failure, remove what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(path, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = tqdm(total=total, unit="B", unit_scale=True, disable=not progress)
            with bar:
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
