"""Downloading data files from a list of mirrors, checksummed, resumable, with one clear error.

Each data set lists its files as :class:`Resource` records next to its loader (the file's
name, the checksum its publisher gives, and every known mirror, each with a comment
saying where it comes from). The loaders hand them to :func:`fetch`, which

* uses a file already at the destination if its checksum matches (no network at all);
* otherwise tries the mirrors in order, each with a time-out, writing into
  ``destination + ".part"`` and showing a progress bar;
* resumes a partial file with an HTTP ``Range`` request, and starts again from zero when
  the server ignores the range or the resumed file turns out corrupt;
* accepts a mirror's file only if its checksum is the published one (a corrupt or
  different file is deleted, never renamed to the destination), then moves on;
* raises one :class:`DownloadError` when every mirror failed, naming each mirror with its
  error and the exact path where a file downloaded by hand should go.

Archives are unpacked afterwards with torchvision's
:func:`~torchvision.datasets.utils.extract_archive`. Tests point the mirrors at local
``http.server`` threads on 127.0.0.1, so nothing here needs the internet to be tested.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .._checks import check_bool, check_choice, check_positive_number, describe

USER_AGENT = "segtutor (+https://github.com/segtutor/segtutor)"
DEFAULT_TIMEOUT_S = 30.0
"""Seconds :func:`fetch` waits for a mirror to connect or to send the next bytes."""

_CHUNK_BYTES = 1 << 20
_ALGORITHMS = ("md5", "sha256")
_DIGEST_LENGTHS = {"md5": 32, "sha256": 64}
_SCHEMES = ("http", "https", "file")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)$")

# Mirrors (scheme://host:port) that timed out or could not be reached in this process;
# later calls try them after the others, so that a data set of many files (ISBI 2012 has
# 60) pays a dead mirror's time-out once, not once per file. Nothing is skipped.
_DEMOTED: set[str] = set()


# ---------------------------------------------------------------- errors


@dataclass(frozen=True)
class Attempt:
    """How one mirror failed: its ``url``, the ``kind`` of failure and a one-line ``message``.

    ``kind`` is ``"unreachable"`` (no connection, or the transfer broke off: the partial
    file is kept), ``"timeout"``, ``"missing"`` (the server answered but has no such file)
    or ``"checksum"`` (the bytes are not the published file; nothing was kept).
    """

    url: str
    kind: str
    message: str


class DownloadError(ConnectionError):
    """Every mirror of a file failed; :attr:`attempts` says how, :attr:`destination` where
    a file downloaded by hand goes.

    A :class:`ConnectionError`. When every mirror failed the same way it is also the
    exception that failure always raised: :class:`ChecksumMismatchError` (a
    ``ValueError``) when each served wrong bytes, :class:`MissingOnMirrorsError` (a
    ``FileNotFoundError``) when none has the file.
    """

    def __init__(self, message: str, attempts: Sequence[Attempt], destination: Path) -> None:
        super().__init__(message)
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        self.destination = destination

    def __str__(self) -> str:  # OSError's own __str__ would prefix errno/filename fields
        return str(self.args[0])


class ChecksumMismatchError(DownloadError, ValueError):
    """Every mirror served bytes whose checksum is not the published one."""


class MissingOnMirrorsError(DownloadError, FileNotFoundError):
    """Every mirror answered, but none has the file (HTTP error, missing ``file://`` path)."""


class _MirrorFailure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# ---------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resource:
    """One downloadable file of a data set: the one source of truth for its mirrors.

    Args:
        filename: the file's name on disk (``"VOCtrainval_11-May-2012.tar"``).
        checksum: ``(algorithm, hex digest)`` as its publisher gives it, e.g.
            ``("md5", "6cd6e144f989b92b3379bac3b3de84fd")``.
        mirrors: full URLs of the same file, tried in this order.

    Raises:
        TypeError, ValueError: a field of the wrong type or value (named in the message).
    """

    filename: str
    checksum: tuple[str, str]
    mirrors: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.filename, str):
            raise TypeError(f"filename must be a str, got {describe(self.filename)} "
                            f"({type(self.filename).__name__})")
        if not self.filename or Path(self.filename).name != self.filename:
            raise ValueError(f"filename must be a bare file name (no folder), got {self.filename!r}")
        object.__setattr__(self, "checksum", _check_checksum(self.checksum))
        object.__setattr__(self, "mirrors", _check_mirrors(self.mirrors))


# ---------------------------------------------------------------- fetch


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file's bytes, ``algorithm`` being ``"md5"`` or ``"sha256"``."""
    _check_algorithm(algorithm)
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    mirrors: str | Sequence[str],
    destination: str | os.PathLike[str],
    *,
    checksum: tuple[str, str],
    progress: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download a file from the first mirror that serves it intact, unless it is already there.

    A file at ``destination`` with the right checksum is returned at once, without any
    network access (so a file downloaded by hand and placed there is used). Otherwise
    the mirrors are tried in order (those that timed out or could not be reached earlier
    in this process go last). Each download goes to ``destination`` + ``".part"``; that
    partial file is resumed with an HTTP ``Range`` request -- from the same or the next
    mirror, or by a later call -- and started again from zero when the server ignores the
    range or the resumed file fails the checksum. Only a file with the right checksum is
    renamed to ``destination``, so a corrupt download never looks complete.

    Args:
        mirrors: one URL or a list/tuple of URLs of the same file (``https://``,
            ``http://`` or ``file://``), tried in order.
        destination: where the file goes; missing folders are created.
        checksum: ``(algorithm, hex digest)``, e.g. ``("sha256", "12c0...")``; the
            algorithm is ``"md5"`` or ``"sha256"``.
        progress: show a tqdm progress bar for the transfer.
        timeout: seconds a mirror may take to connect or to send its next bytes before
            the next mirror is tried (not a limit on the whole transfer).

    Returns:
        ``destination`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: every mirror failed (a ``ConnectionError``); the message lists each
            mirror with its error and says where to place the file by hand. Its subclass
            :class:`MissingOnMirrorsError` (also a ``FileNotFoundError``) when every mirror
            answered without the file (HTTP error, or a missing ``file://`` path), and
            :class:`ChecksumMismatchError` (also a ``ValueError``) when every mirror
            served bytes with another checksum.
        TypeError: an argument of the wrong type (named in the message).
        ValueError: an unknown checksum algorithm, a digest of the wrong form, no mirror,
            a URL of another scheme, or a ``timeout`` that is not a positive number.
    """
    urls = _check_mirrors(mirrors)
    algorithm, expected = _check_checksum(checksum)
    if not isinstance(destination, (str, os.PathLike)):
        raise TypeError(f"destination must be a str or a path, got {describe(destination)} "
                        f"({type(destination).__name__})")
    check_bool(progress, "progress")
    timeout = check_positive_number(timeout, "timeout")
    destination = Path(destination)
    present = None
    if destination.is_file():
        present = file_digest(destination, algorithm)
        if present == expected:
            return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    attempts: list[Attempt] = []
    for url in _in_trial_order(urls):
        try:
            _from_mirror(url, partial, algorithm, expected, timeout, progress)
        except _MirrorFailure as failure:
            attempts.append(Attempt(url, failure.kind, failure.message))
            if failure.kind in ("timeout", "unreachable"):
                _DEMOTED.add(_origin(url))
            continue
        _DEMOTED.discard(_origin(url))
        partial.replace(destination)
        return destination
    raise _all_failed(attempts, destination, partial, (algorithm, expected), present)


def _from_mirror(url: str, partial: Path, algorithm: str, expected: str, timeout: float,
                 progress: bool) -> None:
    """Leave the intact file in ``partial`` or raise :class:`_MirrorFailure`."""
    while True:
        resumed = _transfer(url, partial, timeout, progress)
        actual = file_digest(partial, algorithm)
        if actual == expected:
            return
        partial.unlink()
        if not resumed:  # a whole file from this mirror, and it is not the published one
            raise _MirrorFailure("checksum", f"checksum mismatch for {url}: {algorithm} is "
                                             f"{actual}, expected {expected} (not kept)")
        # the kept partial was corrupt: the loop fetches the file again, from zero


def _transfer(url: str, partial: Path, timeout: float, progress: bool) -> bool:
    """Append the rest of ``url`` to ``partial`` (or write it whole); return whether it resumed.

    A network failure leaves what arrived in ``partial`` for the next attempt to resume.
    """
    offset = partial.stat().st_size if partial.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(  # noqa: S310 (schemes checked)
            urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:  # the partial already holds the whole file (or more)
            return True
        kind = "unreachable" if error.code >= 500 else "missing"
        raise _MirrorFailure(kind, f"{url} answered HTTP {error.code} ({error.reason})") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, FileNotFoundError):
            raise _MirrorFailure("missing", f"{url} does not exist ({reason})") from None
        if isinstance(reason, TimeoutError):
            raise _MirrorFailure("timeout", _timed_out(url, timeout)) from None
        raise _MirrorFailure("unreachable", f"{url} cannot be reached ({reason})") from None
    except TimeoutError:  # connected, but no answer in time
        raise _MirrorFailure("timeout", _timed_out(url, timeout)) from None
    except (OSError, http.client.HTTPException) as error:
        raise _MirrorFailure("unreachable", f"{url} cannot be reached ({error!r})") from None
    with response:
        status = getattr(response, "status", None)
        resumed = offset > 0 and status == 206 and _range_start(response) == offset
        if offset and status == 206 and not resumed:  # a range, but not the one asked for
            response.close()
            partial.unlink()
            return _transfer(url, partial, timeout, progress)
        length = int(response.headers.get("Content-Length") or 0) or None
        start = offset if resumed else 0
        total = start + length if length is not None else None
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=partial.name.removesuffix(".part"), disable=not progress)
        with bar, open(partial, "ab" if resumed else "wb") as out:
            received = 0
            while True:
                try:
                    chunk = response.read(_CHUNK_BYTES)
                except TimeoutError:
                    raise _MirrorFailure("timeout", _timed_out(url, timeout)
                                         + f"; {out.tell()} bytes kept to resume") from None
                except (OSError, http.client.HTTPException) as error:
                    raise _MirrorFailure("unreachable", f"{url} broke off ({error!r}); "
                                         f"{out.tell()} bytes kept to resume") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            if length is not None and received < length:  # http.client returns b"" early
                raise _MirrorFailure("unreachable", f"{url} broke off after {received} of "
                                     f"{length} bytes; {out.tell()} bytes kept to resume")
    return resumed


def _range_start(response: http.client.HTTPResponse) -> int | None:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
    return int(match.group(1)) if match else None


def _timed_out(url: str, timeout: float) -> str:
    return f"{url} timed out (nothing for {timeout:g} s)"


def _all_failed(attempts: list[Attempt], destination: Path, partial: Path,
                checksum: tuple[str, str], present: str | None) -> DownloadError:
    algorithm, expected = checksum
    kinds = {attempt.kind for attempt in attempts}
    cls = (ChecksumMismatchError if kinds == {"checksum"}
           else MissingOnMirrorsError if kinds == {"missing"} else DownloadError)
    lines = [f"could not download {destination.name}: all {len(attempts)} mirrors failed:"
             if len(attempts) > 1 else f"could not download {destination.name}:"]
    lines += [f"  {n}. {attempt.message}" for n, attempt in enumerate(attempts, 1)]
    if present is not None:
        lines.append(f"The file already at {destination} has {algorithm} {present}, not the "
                     f"published one; it was left untouched.")
    lines.append(f"Download it by hand from one of these addresses (or copy it from another "
                 f"machine) and place the file at {destination} -- it is used once its "
                 f"{algorithm} is {expected}.")
    if partial.is_file():
        lines.append(f"The {partial.stat().st_size} bytes received so far are kept in "
                     f"{partial} and resumed next time.")
    return cls("\n".join(lines), attempts, destination)


# ---------------------------------------------------------------- checks and order


def _check_algorithm(algorithm: str) -> None:
    check_choice(algorithm, "checksum algorithm", _ALGORITHMS)


def _check_checksum(checksum: object) -> tuple[str, str]:
    what = "(algorithm, hex digest), e.g. ('md5', '6cd6e144f989b92b3379bac3b3de84fd')"
    if not isinstance(checksum, (tuple, list)):
        raise TypeError(f"checksum must be {what}, got {describe(checksum)} "
                        f"({type(checksum).__name__})")
    if len(checksum) != 2:
        raise ValueError(f"checksum must be {what}, got {describe(checksum)} "
                         f"({len(checksum)} entries)")
    algorithm, digest = checksum
    if not isinstance(algorithm, str) or not isinstance(digest, str):
        raise TypeError(f"checksum must be {what} (two strings), got {describe(checksum)}")
    _check_algorithm(algorithm)
    length = _DIGEST_LENGTHS[algorithm]
    if len(digest) != length or not re.fullmatch(r"[0-9a-f]+", digest):
        raise ValueError(f"checksum digest must be {length} lowercase hex digits for "
                         f"{algorithm}, got {digest!r}")
    return algorithm, digest


def _check_mirrors(mirrors: object) -> tuple[str, ...]:
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    if not isinstance(mirrors, (tuple, list)):
        raise TypeError(f"mirrors must be a URL or a list/tuple of URLs, got "
                        f"{describe(mirrors)} ({type(mirrors).__name__})")
    if not mirrors:
        raise ValueError("mirrors must name at least one URL, got an empty "
                         f"{type(mirrors).__name__}")
    for url in mirrors:
        if not isinstance(url, str):
            raise TypeError(f"each mirror must be a URL string, got {describe(url)} "
                            f"({type(url).__name__})")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in _SCHEMES or not (parts.netloc or parts.scheme == "file"):
            raise ValueError(f"each mirror must be an {', '.join(_SCHEMES)} URL, got {url!r}")
    return tuple(mirrors)


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _in_trial_order(urls: tuple[str, ...]) -> list[str]:
    """``urls`` in their order, those whose host failed earlier in this process last."""
    return sorted(urls, key=lambda url: _origin(url) in _DEMOTED)
