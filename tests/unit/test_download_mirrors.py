"""segtutor.data.download.fetch over lists of mirrors, and the loaders and weights that use it.

Every mirror is a local server on 127.0.0.1: an HTTP server (``Mirror``) that serves given
bytes, honours or ignores ``Range``, can corrupt or truncate what it sends, and logs every
request; a socket that accepts connections and never answers (``Silent``); a port where
nothing listens. Checksums are checked with ``hashlib``, bytes against those served.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segtutor.data import download, isbi, pets
from segtutor.data.download import (
    ChecksumMismatchError,
    DownloadError,
    MissingOnMirrorsError,
    Resource,
    fetch,
)
from segtutor.data.isbi import download_isbi2012
from segtutor.data.pets import download_oxford_pets
from segtutor.data.voc import download_voc2012
from segtutor.models import WeightsUnavailableError, vgg

TIMEOUT = 0.4  # seconds: the per-mirror time-out the tests use
PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA256 = ("sha256", hashlib.sha256(PAYLOAD).hexdigest())


@pytest.fixture(autouse=True)
def _fresh_demotions():
    """Each test starts with no mirror demoted (a port may be reused by a later server)."""
    download._DEMOTED.clear()
    yield
    download._DEMOTED.clear()


# ---------------------------------------------------------------- local mirrors


class Mirror:
    """An HTTP server on 127.0.0.1 serving ``files`` (URL path -> bytes).

    Args:
        files: what it serves; any other path answers 404.
        ranges: honour ``Range: bytes=N-`` (206 and the rest; 416 past the end).
        corrupt: serve the bytes with one byte changed.
        truncate: send only this many body bytes (the full Content-Length), then close.

    ``requests`` logs ``(method, path, Range header or None, status, body bytes sent)``.
    """

    def __init__(self, files: dict[str, bytes], *, ranges: bool = True, corrupt: bool = False,
                 truncate: int | None = None) -> None:
        self.files, self.ranges, self.corrupt, self.truncate = files, ranges, corrupt, truncate
        self.requests: list[tuple[str, str, str | None, int, int]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Mirror:
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(body=False)

            def do_GET(self):
                self.answer(body=True)

            def answer(self, body: bool) -> None:
                data = mirror.files.get(self.path)
                asked = self.headers.get("Range")
                if data is None:
                    mirror.requests.append((self.command, self.path, asked, 404, 0))
                    self.send_error(404)
                    return
                if mirror.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                status, start = 200, 0
                if asked and mirror.ranges:
                    start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
                    status = 206 if start < len(data) else 416
                chunk = b"" if status == 416 else data[start:]
                sent = chunk if mirror.truncate is None else chunk[: mirror.truncate]
                mirror.requests.append((self.command, self.path, asked, status,
                                        len(sent) if body else 0))
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                if status == 416:
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if body:
                    self.wfile.write(sent)
                self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Silent:
    """A server that accepts every connection and never answers; counts the connections."""

    def __enter__(self) -> Silent:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.socket.accept()[0])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __exit__(self, *exc) -> None:
        self.socket.close()
        for connection in self.accepted:
            connection.close()


@contextlib.contextmanager
def mirrors(*servers) -> Iterator[list]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(server) for server in servers]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- (a) a mirror that hangs


def test_a_silent_mirror_times_out_quickly_and_the_next_one_serves(tmp_path):
    with mirrors(Silent(), Mirror({"/f.bin": PAYLOAD})) as (silent, good):
        started = time.monotonic()
        out = fetch([silent.url("/f.bin"), good.url("/f.bin")], tmp_path / "f.bin",
                    checksum=SHA256, timeout=TIMEOUT)
        elapsed = time.monotonic() - started
        assert out.read_bytes() == PAYLOAD and sha256_of(out) == SHA256[1]
        assert TIMEOUT <= elapsed < TIMEOUT + 3  # waited for the time-out, not 60 s
        assert len(silent.accepted) == 1 and [r[3] for r in good.requests] == [200]
        # The silent mirror is now tried last: the next file costs no time-out at all.
        fetch([silent.url("/f.bin"), good.url("/f.bin")], tmp_path / "g.bin", checksum=SHA256,
              timeout=TIMEOUT)
        assert len(silent.accepted) == 1 and len(good.requests) == 2


def test_isbi_download_pays_a_silent_mirrors_time_out_once(tmp_path, monkeypatch):
    files, sums = {}, {}
    for n in range(3):
        for kind in ("image", "label"):
            buffer = tmp_path / "png" / f"{kind}{n}.png"
            buffer.parent.mkdir(exist_ok=True)
            Image.fromarray(np.full((4, 4), 40 * n, dtype=np.uint8)).save(buffer)
            files[f"/train/{kind}/{n}.png"] = buffer.read_bytes()
            sums[f"{kind}/{n}.png"] = sha256_of(buffer)
    monkeypatch.setattr(isbi, "ISBI2012_SHA256", sums)
    with mirrors(Silent(), Mirror(files)) as (silent, good):
        root = download_isbi2012(tmp_path / "isbi", (silent.url("/train"), good.url("/train")),
                                 timeout=TIMEOUT)
    assert len(silent.accepted) == 1 and len(good.requests) == 6
    for path, data in files.items():
        assert (root / path.lstrip("/")).read_bytes() == data


# ---------------------------------------------------------------- (b) a corrupted mirror


def test_a_corrupt_mirror_is_skipped_and_its_file_not_kept(tmp_path):
    with mirrors(Mirror({"/f.bin": PAYLOAD}, corrupt=True), Mirror({"/f.bin": PAYLOAD})) as (
            bad, good):
        out = fetch([bad.url("/f.bin"), good.url("/f.bin")], tmp_path / "f.bin",
                    checksum=SHA256, timeout=TIMEOUT)
    assert out.read_bytes() == PAYLOAD
    assert bad.requests[0][3] == 200 and bad.requests[0][4] == len(PAYLOAD)  # it was tried
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no .part left


def test_every_mirror_corrupt_raises_a_value_error_and_keeps_nothing(tmp_path):
    with mirrors(Mirror({"/f.bin": PAYLOAD}, corrupt=True),
                 Mirror({"/f.bin": PAYLOAD}, corrupt=True)) as (one, two):
        urls = [one.url("/f.bin"), two.url("/f.bin")]
        with pytest.raises(ChecksumMismatchError) as caught:
            fetch(urls, tmp_path / "f.bin", checksum=SHA256, timeout=TIMEOUT)
    wrong = hashlib.sha256(bytes([PAYLOAD[0] ^ 0xFF]) + PAYLOAD[1:]).hexdigest()
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, ConnectionError)
    for url in urls:
        assert f"checksum mismatch for {url}: sha256 is {wrong}, expected {SHA256[1]}" in str(
            caught.value)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- (c) resuming a partial file


def test_a_partial_file_is_resumed_with_a_range_request(tmp_path, capsys):
    partial = tmp_path / "f.bin.part"
    partial.write_bytes(PAYLOAD[:100_000])
    with Mirror({"/f.bin": PAYLOAD}) as server:
        out = fetch(server.url("/f.bin"), tmp_path / "f.bin", checksum=SHA256, progress=True,
                    timeout=TIMEOUT)
    assert server.requests == [("GET", "/f.bin", "bytes=100000-", 206, 200_000)]
    assert out.read_bytes() == PAYLOAD and not partial.exists()
    bar = capsys.readouterr().err
    assert "f.bin" in bar and "100%" in bar


def test_a_server_that_ignores_range_restarts_cleanly(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:100_000])
    with Mirror({"/f.bin": PAYLOAD}, ranges=False) as server:
        out = fetch(server.url("/f.bin"), tmp_path / "f.bin", checksum=SHA256, timeout=TIMEOUT)
    assert server.requests == [("GET", "/f.bin", "bytes=100000-", 200, len(PAYLOAD))]
    assert out.read_bytes() == PAYLOAD  # not the old 100 kB plus the whole file


def test_a_corrupt_partial_file_is_fetched_again_from_zero(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(b"\0" * 100_000)  # not the file's first bytes
    with Mirror({"/f.bin": PAYLOAD}) as server:
        out = fetch(server.url("/f.bin"), tmp_path / "f.bin", checksum=SHA256, timeout=TIMEOUT)
    assert [(r[2], r[3]) for r in server.requests] == [("bytes=100000-", 206), (None, 200)]
    assert out.read_bytes() == PAYLOAD


def test_a_transfer_broken_off_is_resumed_from_the_next_mirror(tmp_path):
    with mirrors(Mirror({"/f.bin": PAYLOAD}, truncate=120_000), Mirror({"/f.bin": PAYLOAD})) as (
            breaking, good):
        out = fetch([breaking.url("/f.bin"), good.url("/f.bin")], tmp_path / "f.bin",
                    checksum=SHA256, timeout=TIMEOUT)
    assert breaking.requests == [("GET", "/f.bin", None, 200, 120_000)]
    assert good.requests == [("GET", "/f.bin", "bytes=120000-", 206, len(PAYLOAD) - 120_000)]
    assert out.read_bytes() == PAYLOAD


def test_a_complete_partial_file_answered_416_is_used(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)  # interrupted just before the rename
    with Mirror({"/f.bin": PAYLOAD}) as server:
        out = fetch(server.url("/f.bin"), tmp_path / "f.bin", checksum=SHA256, timeout=TIMEOUT)
    assert server.requests == [("GET", "/f.bin", f"bytes={len(PAYLOAD)}-", 416, 0)]
    assert out.read_bytes() == PAYLOAD


# ---------------------------------------------------------------- (d) every mirror fails


def test_all_mirrors_failing_give_one_error_naming_each_and_the_path(tmp_path, unreachable_url):
    destination = tmp_path / "data" / "f.bin"
    with mirrors(Mirror({}), Silent(), Mirror({"/f.bin": PAYLOAD}, corrupt=True),
                 Mirror({"/f.bin": PAYLOAD}, truncate=1000)) as (empty, silent, bad, breaking):
        urls = [unreachable_url("f.bin"), empty.url("/f.bin"), silent.url("/f.bin"),
                bad.url("/f.bin"), breaking.url("/f.bin")]
        with pytest.raises(DownloadError) as caught:
            fetch(urls, destination, checksum=SHA256, timeout=TIMEOUT)
    error = caught.value
    assert isinstance(error, ConnectionError)
    assert not isinstance(error, (ValueError, FileNotFoundError))  # mixed failures
    assert [a.url for a in error.attempts] == urls and error.destination == destination
    assert [a.kind for a in error.attempts] == [
        "unreachable", "missing", "timeout", "checksum", "unreachable"]
    message = str(error)
    assert message.startswith("could not download f.bin: all 5 mirrors failed:\n")
    assert f"1. {urls[0]} cannot be reached (" in message
    assert f"2. {urls[1]} answered HTTP 404" in message
    assert f"3. {urls[2]} timed out (nothing for {TIMEOUT:g} s)" in message
    assert f"4. checksum mismatch for {urls[3]}: sha256 is" in message
    assert f"5. {urls[4]} broke off after 1000 of {len(PAYLOAD)} bytes" in message
    assert f"place the file at {destination} -- it is used once its sha256 is {SHA256[1]}" in (
        message)
    assert f"The 1000 bytes received so far are kept in {destination}.part" in message
    assert not destination.exists()


def test_no_mirror_having_the_file_is_a_file_not_found_error(tmp_path):
    with Mirror({}) as empty:
        with pytest.raises(MissingOnMirrorsError, match=r"answered HTTP 404") as caught:
            fetch([empty.url("/a"), (tmp_path / "none").as_uri()], tmp_path / "a",
                  checksum=SHA256, timeout=TIMEOUT)
    assert isinstance(caught.value, FileNotFoundError)
    assert re.search(r"2\. file://\S*/none does not exist", str(caught.value))


def test_voc_download_goes_past_dead_and_corrupt_mirrors(tmp_path):
    source = tmp_path / "source" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    source.mkdir(parents=True)
    (source / "train.txt").write_text("2007_000001\n")
    archive = tmp_path / "VOCtrainval_11-May-2012.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "source" / "VOCdevkit", arcname="VOCdevkit")
    data = archive.read_bytes()
    with mirrors(Silent(), Mirror({"/voc.tar": data}, corrupt=True),
                 Mirror({"/voc.tar": data})) as (silent, bad, good):
        resource = Resource(archive.name, ("md5", hashlib.md5(data).hexdigest()),
                            (silent.url("/voc.tar"), bad.url("/voc.tar"), good.url("/voc.tar")))
        base = download_voc2012(tmp_path / "root", resource, timeout=TIMEOUT)
    assert (base / "ImageSets" / "Segmentation" / "train.txt").read_text() == "2007_000001\n"
    assert (tmp_path / "root" / archive.name).read_bytes() == data


def test_pets_failure_names_every_mirror_and_where_the_archive_goes(tmp_path, unreachable_url):
    urls = (unreachable_url("images.tar.gz"), unreachable_url("images.tar.gz"))
    resource = Resource("images.tar.gz", ("md5", "5c4f3ee8e5d25df40f4fd59a7f44e54c"), urls)
    with pytest.raises(DownloadError) as caught:
        download_oxford_pets(tmp_path, (resource,), timeout=TIMEOUT)
    assert all(url in str(caught.value) for url in urls)
    assert f"place the file at {tmp_path / 'oxford-iiit-pet' / 'images.tar.gz'}" in str(
        caught.value)


def test_the_published_mirror_tables_hold_the_published_checksums():
    from segtutor.data import voc

    assert voc.VOC2012_TRAINVAL.checksum == ("md5", "6cd6e144f989b92b3379bac3b3de84fd")
    assert all(url.endswith("/VOCtrainval_11-May-2012.tar") for url in voc.VOC2012_TRAINVAL.mirrors)
    torchvision_pets = __import__("torchvision").datasets.OxfordIIITPet._RESOURCES
    assert [(r.filename, r.checksum[1]) for r in pets.PETS_RESOURCES] == [
        (url.rsplit("/", 1)[1], md5) for url, md5 in torchvision_pets]
    assert all(url.endswith("/" + r.filename) for r in pets.PETS_RESOURCES for url in r.mirrors)
    assert len(isbi.ISBI2012_MIRRORS) >= 2 and len(voc.VOC2012_TRAINVAL.mirrors) >= 2


# ---------------------------------------------------------------- (e) already there


def test_a_file_already_there_with_the_right_checksum_needs_no_network(tmp_path):
    (tmp_path / "f.bin").write_bytes(PAYLOAD)  # e.g. downloaded by hand and placed there
    with mirrors(Silent(), Mirror({"/f.bin": PAYLOAD})) as (silent, good):
        out = fetch([silent.url("/f.bin"), good.url("/f.bin")], tmp_path / "f.bin",
                    checksum=SHA256, timeout=TIMEOUT)
    assert out == tmp_path / "f.bin" and silent.accepted == [] and good.requests == []


def test_a_wrong_file_already_there_is_replaced_only_by_a_good_download(tmp_path, unreachable_url):
    (tmp_path / "f.bin").write_bytes(b"not it")
    with pytest.raises(DownloadError, match=r"The file already at \S+f\.bin has sha256 "
                                            r"[0-9a-f]{64}, not the published one; it was left"):
        fetch(unreachable_url("f.bin"), tmp_path / "f.bin", checksum=SHA256, timeout=TIMEOUT)
    assert (tmp_path / "f.bin").read_bytes() == b"not it"
    with Mirror({"/f.bin": PAYLOAD}) as good:
        fetch(good.url("/f.bin"), tmp_path / "f.bin", checksum=SHA256, timeout=TIMEOUT)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


# ---------------------------------------------------------------- (f) bad arguments


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"mirrors": 7}, TypeError, r"mirrors must be a URL or a list/tuple of URLs, got 7 \(int\)"),
    ({"mirrors": []}, ValueError, r"mirrors must name at least one URL, got an empty list"),
    ({"mirrors": ["http://a/x", b"http://b/x"]}, TypeError, r"each mirror must be a URL string, "
                                                             r"got b'http://b/x' \(bytes\)"),
    ({"mirrors": ["ftp://a/x"]}, ValueError, r"http, https, file URL, got 'ftp://a/x'"),
    ({"mirrors": ["http:///x"]}, ValueError, r"got 'http:///x'"),
    ({"destination": 3}, TypeError, r"destination must be a str or a path, got 3 \(int\)"),
    ({"checksum": "abc"}, TypeError, r"checksum must be \(algorithm, hex digest\).* got 'abc'"),
    ({"checksum": ("md5",)}, ValueError, r"checksum must be .*\(1 entries\)"),
    ({"checksum": ("sha1", "0" * 40)}, ValueError,
     r"checksum algorithm must be one of \('md5', 'sha256'\), got 'sha1'"),
    ({"checksum": ("md5", "XYZ")}, ValueError,
     r"checksum digest must be 32 lowercase hex digits for md5, got 'XYZ'"),
    ({"checksum": ("md5", 5)}, TypeError, r"\(two strings\), got \('md5', 5\)"),
    ({"progress": "yes"}, TypeError, r"progress must be True or False, got 'yes'"),
    ({"timeout": 0}, ValueError, r"timeout must be a finite number > 0, got 0"),
    ({"timeout": "5"}, TypeError, r"timeout must be a finite number > 0, got '5' \(str\)"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, error, match):
    arguments = {"mirrors": ["http://127.0.0.1:9/x"], "destination": tmp_path / "x",
                 "checksum": ("md5", "0" * 32), "progress": False, "timeout": 1.0, **kwargs}
    mirrors_, destination = arguments.pop("mirrors"), arguments.pop("destination")
    with pytest.raises(error, match=match):
        fetch(mirrors_, destination, **arguments)
    assert not (tmp_path / "x").exists()


def test_a_resource_checks_its_fields():
    with pytest.raises(ValueError, match=r"filename must be a bare file name .*got 'a/b.tar'"):
        Resource("a/b.tar", ("md5", "0" * 32), ("http://a/b.tar",))
    with pytest.raises(ValueError, match=r"got 'ftp://a/b.tar'"):
        Resource("b.tar", ("md5", "0" * 32), ("ftp://a/b.tar",))
    assert Resource("b.tar", ["md5", "0" * 32], ["http://a/b.tar"]).mirrors == ("http://a/b.tar",)


# ---------------------------------------------------------------- pretrained weights


def _tiny_weights_file(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    state = vgg.vgg16(num_classes=7, width=8, hidden=16).state_dict()
    saved = folder / "tiny.pth"
    torch.save(state, saved)
    return saved.rename(folder / f"tinyvgg-{sha256_of(saved)[:8]}.pth"), state


def test_weights_placed_by_hand_are_used_without_network(tmp_path, monkeypatch, local_weights,
                                                          unreachable_url):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    named, state = _tiny_weights_file(tmp_path)
    cache = tmp_path / "home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    named.rename(cache / named.name)
    loaded = vgg.load_weights(local_weights(unreachable_url(named.name)), progress=False)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[key], state[key]) for key in state)


def test_weights_placed_by_hand_with_the_wrong_bytes_are_refused(tmp_path, monkeypatch,
                                                                  local_weights, unreachable_url):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "tinyvgg-0123abcd.pth").write_bytes(b"truncated")
    with pytest.raises(ValueError, match=r"tinyvgg-0123abcd.pth is not the file of .* its "
                                         r"SHA-256 is [0-9a-f]{64}, but the name says it "
                                         r"starts with 0123abcd\. Delete it"):
        vgg.load_weights(local_weights(unreachable_url("tinyvgg-0123abcd.pth")))


def test_a_silent_weights_server_fails_fast_naming_the_file_to_place(tmp_path, monkeypatch,
                                                                      local_weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    with Silent() as silent:
        url = silent.url("/vgg16-397923af.pth")
        started = time.monotonic()
        with pytest.raises(WeightsUnavailableError) as caught:
            vgg.load_weights(local_weights(url), progress=False, timeout=TIMEOUT)
        assert time.monotonic() - started < TIMEOUT + 3
    target = tmp_path / "home" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    message = str(caught.value)
    assert message.startswith(f"could not download LocalWeights.TEST from {url} (")
    assert f"place it at {target} (file name vgg16-397923af.pth; its SHA-256 must start " \
           f"with 397923af)" in message
    assert not target.exists()


def test_weights_download_then_reuse_of_the_cached_file(tmp_path, monkeypatch, local_weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    named, state = _tiny_weights_file(tmp_path)
    with Mirror({f"/{named.name}": named.read_bytes()}) as server:
        weights = local_weights(server.url(f"/{named.name}"))
        first = vgg.load_weights(weights, progress=False, timeout=TIMEOUT)
        assert [r[0] for r in server.requests] == ["HEAD", "GET"]
        second = vgg.load_weights(weights, progress=False, timeout=TIMEOUT)
        assert len(server.requests) == 2  # the cached, verified file: no request
    cached = tmp_path / "home" / "hub" / "checkpoints" / named.name
    assert cached.read_bytes() == named.read_bytes()
    assert all(torch.equal(first[k], state[k]) and torch.equal(second[k], state[k])
               for k in state)


def test_load_weights_bad_arguments():
    with pytest.raises(TypeError, match=r"weights must be a torchvision WeightsEnum member, "
                                        r"got 'IMAGENET1K_V1'"):
        vgg.load_weights("IMAGENET1K_V1")
    with pytest.raises(ValueError, match=r"timeout must be a finite number > 0, got -1"):
        vgg.load_weights(vgg.VGG16_Weights.IMAGENET1K_V1, timeout=-1)
