"""segtutor.data loaders (VOC, Oxford-IIIT Pet, ISBI 2012) and their downloads, offline.

VOC and Pet run on tiny fake trees written here with PIL, in torchvision's layout, and are
compared with torchvision's own data sets reading the same files. ISBI runs on a fake tree
and on the real copy in ../shared/data/isbi2012 when it is there. Downloads are served by
a local http.server on 127.0.0.1.
"""

import contextlib
import functools
import hashlib
import http.server
import shutil
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from segtutor.data import (
    IGNORE_INDEX,
    ISBI2012,
    VOC_CLASSES,
    OxfordPets,
    VOCSegmentation,
    default_isbi_root,
    download_isbi2012,
    fetch,
    isbi,
    pets,
    voc,
)
from segtutor.data.download import Resource
from segtutor.data.isbi2012_sha256 import ISBI2012_SHA256

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_ISBI = REPO_ROOT.parent / "shared" / "data" / "isbi2012"


# ---------------------------------------------------------------- helpers


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: what being offline looks like."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_rgb(path: Path, height: int, width: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_label(path: Path, labels: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(labels.astype(np.uint8))
    if palette:
        picture.putpalette(np.random.default_rng(0).integers(0, 256, 768).tolist())
    picture.save(path)


def object_with_border(height: int, width: int, class_id: int) -> np.ndarray:
    """Background 0, a rectangle of ``class_id`` and, as in VOC, a 255 band around it."""
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[2 : height - 2, 3 : width - 3] = IGNORE_INDEX
    labels[3 : height - 3, 4 : width - 4] = class_id
    return labels


# ---------------------------------------------------------------- Pascal VOC

VOC_ITEMS = {"2007_000001": (20, 30, 12), "2007_000002": (24, 16, 15), "2007_000003": (18, 22, 1)}


def make_voc(root: Path) -> Path:
    base = root / "VOCdevkit" / "VOC2012"
    for seed, (name, (height, width, class_id)) in enumerate(VOC_ITEMS.items()):
        write_rgb(base / "JPEGImages" / f"{name}.jpg", height, width, seed)
        labels = object_with_border(height, width, class_id)
        write_label(base / "SegmentationClass" / f"{name}.png", labels, palette=True)
    splits = base / "ImageSets" / "Segmentation"
    splits.mkdir(parents=True)
    names = list(VOC_ITEMS)
    (splits / "train.txt").write_text("\n".join(names[:2]) + "\n")
    (splits / "val.txt").write_text(names[2] + "\n")
    (splits / "trainval.txt").write_text("\n".join(names) + "\n")
    return base


def test_voc_reads_the_same_pixels_as_torchvision_and_keeps_borders(tmp_path):
    make_voc(tmp_path)
    ours = VOCSegmentation(tmp_path, image_set="trainval")
    reference = torchvision.datasets.VOCSegmentation(tmp_path, year="2012", image_set="trainval")
    assert len(ours) == len(reference) == 3
    assert ours.classes == VOC_CLASSES and len(VOC_CLASSES) == 21 and ours.num_classes == 21
    for (image, mask), (ref_image, ref_mask) in zip(ours, reference, strict=True):
        assert image.dtype == torch.float32 and mask.dtype == torch.int64
        torch.testing.assert_close(image, pil_to_tensor(ref_image).float() / 255)
        assert torch.equal(mask, pil_to_tensor(ref_mask)[0].long())
        assert IGNORE_INDEX in mask.unique().tolist()  # borders stay 255, not background
    assert [len(VOCSegmentation(tmp_path, s)) for s in ("train", "val")] == [2, 1]


def test_voc_applies_transforms(tmp_path):
    make_voc(tmp_path)
    data = VOCSegmentation(
        tmp_path, transforms=lambda image, mask: (image[:, :4, :5], mask[:4, :5])
    )
    image, mask = data[0]
    assert image.shape == (3, 4, 5) and mask.shape == (4, 5)


def test_voc_missing_root_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Pascal VOC 2012 not found: .* download=True"):
        VOCSegmentation(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"image_set must be one of .* got 'test'"):
        VOCSegmentation(tmp_path, image_set="test")


def test_voc_rejects_mismatched_sizes_bad_values_and_rgb_masks(tmp_path):
    base = make_voc(tmp_path)
    masks = base / "SegmentationClass"
    write_label(masks / "2007_000001.png", np.zeros((20, 31)), palette=True)
    labels = object_with_border(24, 16, 15)
    labels[5, 5] = 30
    write_label(masks / "2007_000002.png", labels, palette=True)
    Image.new("RGB", (22, 18)).save(masks / "2007_000003.png")
    data = VOCSegmentation(tmp_path, image_set="trainval")
    with pytest.raises(
        ValueError, match=r"2007_000001.jpg and .*2007_000001.png: image size \(20, 30\)"
    ):
        data[0]
    with pytest.raises(ValueError, match=r"2007_000002.png: label values \[30\] are not valid"):
        data[1]
    with pytest.raises(ValueError, match=r"2007_000003.png: label image has PIL mode 'RGB'"):
        data[2]


def test_voc_download_from_a_local_server(tmp_path, monkeypatch):
    make_voc(tmp_path / "source")
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "VOCtrainval_11-May-2012.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "source" / "VOCdevkit", arcname="VOCdevkit")
    with serve(served) as url:
        mirrors = (f"{url}/{archive.name}",)
        monkeypatch.setattr(
            voc, "VOC2012_TRAINVAL", Resource(archive.name, ("md5", md5_of(archive)), mirrors))
        data = VOCSegmentation(tmp_path / "downloaded", image_set="trainval", download=True)
        assert len(data) == 3 and data[0][1].shape == (20, 30)
        monkeypatch.setattr(
            voc, "VOC2012_TRAINVAL", Resource(archive.name, ("md5", "0" * 32), mirrors))
        with pytest.raises(
            ValueError, match=r"checksum mismatch .* md5 is [0-9a-f]{32}, expected 0{32}"
        ):
            VOCSegmentation(tmp_path / "again", download=True)
    assert not (tmp_path / "again" / archive.name).exists()
    assert not (tmp_path / "again" / (archive.name + ".part")).exists()


# ---------------------------------------------------------------- Oxford-IIIT Pet

PET_ITEMS = {"Abyssinian_1": ("trainval", 1, 1), "beagle_2": ("test", 13, 2)}


def make_pets(root: Path) -> Path:
    base = root / "oxford-iiit-pet"
    for seed, (name, (split, breed, species)) in enumerate(PET_ITEMS.items()):
        height, width = 14 + seed, 19
        write_rgb(base / "images" / f"{name}.jpg", height, width, seed)
        trimap = np.full((height, width), 2, dtype=np.uint8)  # background
        trimap[3:-3, 4:-4] = 3  # border band
        trimap[4:-4, 5:-5] = 1  # pet
        write_label(base / "annotations" / "trimaps" / f"{name}.png", trimap)
        with open(base / "annotations" / f"{split}.txt", "a") as listing:
            listing.write(f"{name} {breed} {species} 1\n")
    return base


def test_pets_maps_the_trimap_of_torchvision_to_classes(tmp_path):
    make_pets(tmp_path)
    for split in ("trainval", "test"):
        ours = OxfordPets(tmp_path, split=split)
        reference = torchvision.datasets.OxfordIIITPet(
            tmp_path, split=split, target_types="segmentation"
        )
        assert len(ours) == len(reference) == 1
        (image, mask), (ref_image, ref_trimap) = ours[0], reference[0]
        torch.testing.assert_close(image, pil_to_tensor(ref_image).float() / 255)
        trimap = pil_to_tensor(ref_trimap)[0].long()
        expected = torch.where(trimap == 1, 1, torch.where(trimap == 2, 0, IGNORE_INDEX))
        assert torch.equal(mask, expected)
        assert mask.unique().tolist() == [0, 1, IGNORE_INDEX]
    assert OxfordPets.classes == ("background", "pet") and ours.classes == ("background", "pet")


def test_pets_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Oxford-IIIT Pet not found: .* download=True"):
        OxfordPets(tmp_path)
    with pytest.raises(ValueError, match=r"split must be one of .* got 'train'"):
        OxfordPets(tmp_path, split="train")
    base = make_pets(tmp_path)
    write_label(base / "annotations" / "trimaps" / "Abyssinian_1.png", np.zeros((14, 19)))
    write_label(base / "annotations" / "trimaps" / "beagle_2.png", np.full((15, 20), 2))
    with pytest.raises(
        ValueError, match=r"label values \[0\] are not valid; expected one of \[1, 2, 3\]"
    ):
        OxfordPets(tmp_path)[0]
    with pytest.raises(
        ValueError, match=r"beagle_2.jpg .* image size \(15, 19\) .* mask size \(15, 20\)"
    ):
        OxfordPets(tmp_path, split="test")[0]


def test_pets_download_from_a_local_server(tmp_path, monkeypatch):
    base = make_pets(tmp_path / "source")
    served = tmp_path / "served"
    served.mkdir()
    resources = []
    for folder in ("images", "annotations"):
        archive = served / f"{folder}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(base / folder, arcname=folder)
        resources.append((archive.name, md5_of(archive)))
    with serve(served) as url:
        monkeypatch.setattr(pets, "PETS_RESOURCES", tuple(
            Resource(n, ("md5", m), (f"{url}/{n}",)) for n, m in resources))
        data = OxfordPets(tmp_path / "downloaded", split="test", download=True)
        assert len(data) == 1 and data[0][1].shape == (15, 19)


# ---------------------------------------------------------------- ISBI 2012


def make_isbi(root: Path, size: int = 8) -> Path:
    for n in range(30):
        write_label(root / "train" / "image" / f"{n}.png", np.full((size, size), 7 * n))
        labels = np.full((size, size), 255)
        labels[:, n % size] = 0
        write_label(root / "train" / "label" / f"{n}.png", labels)
    return root


def test_isbi_splits_classes_and_channels_on_a_fake_tree(tmp_path):
    make_isbi(tmp_path)
    assert [len(ISBI2012(tmp_path, split)) for split in ("train", "test", "all")] == [25, 5, 30]
    test_set = ISBI2012(tmp_path, split="test")
    image, mask = test_set[0]  # slice 25
    assert image.shape == (1, 8, 8) and torch.allclose(image, torch.full((1, 8, 8), 175 / 255))
    expected = torch.ones(8, 8, dtype=torch.long)
    expected[:, 25 % 8] = 0  # membrane = class 0, cell interior = class 1
    assert torch.equal(mask, expected)
    rgb, _ = ISBI2012(tmp_path, split="test", channels=3)[0]
    assert rgb.shape == (3, 8, 8) and torch.equal(rgb, image.expand(3, -1, -1))
    assert ISBI2012.classes == ("membrane", "cell") and ISBI2012.num_classes == 2


def test_isbi_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ISBI 2012 not found: .* download=True"):
        ISBI2012(tmp_path / "nowhere")
    with pytest.raises(
        ValueError, match=r"split must be one of \('train', 'test', 'all'\), got 'val'"
    ):
        ISBI2012(tmp_path, split="val")
    with pytest.raises(ValueError, match="channels must be 1 or 3, got 2"):
        ISBI2012(tmp_path, channels=2)
    make_isbi(tmp_path)
    (tmp_path / "train" / "label" / "29.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 files missing .*label/29.png"):
        ISBI2012(tmp_path, split="all")
    write_label(tmp_path / "train" / "label" / "0.png", np.full((8, 9), 255))
    write_label(tmp_path / "train" / "label" / "1.png", np.full((8, 8), 128))
    data = ISBI2012(tmp_path)
    with pytest.raises(ValueError, match=r"image/0.png and .*label/0.png: image size \(8, 8\)"):
        data[0]
    with pytest.raises(
        ValueError, match=r"1.png: label values \[128\] are not valid; expected one of \[0, 255\]"
    ):
        data[1]


def test_default_isbi_root_honours_the_environment_variable(tmp_path, monkeypatch):
    make_isbi(tmp_path / "copy")
    monkeypatch.setenv(isbi.ISBI_ROOT_ENV, str(tmp_path / "copy"))
    assert default_isbi_root() == (tmp_path / "copy").resolve()
    monkeypatch.setenv(isbi.ISBI_ROOT_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"SEGTUTOR_ISBI_ROOT=.*missing' is not an ISBI"):
        default_isbi_root()


def test_default_isbi_root_searches_beside_the_project_and_the_working_folder(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(isbi.ISBI_ROOT_ENV, raising=False)
    shared = make_isbi(tmp_path / "shared" / "data" / "isbi2012")
    notebook_folder = tmp_path / "clone" / "book"
    notebook_folder.mkdir(parents=True)
    monkeypatch.setattr(isbi, "_PROJECT_ROOT", tmp_path / "elsewhere" / "project")
    monkeypatch.chdir(notebook_folder)
    assert default_isbi_root() == shared.resolve()
    monkeypatch.chdir(tmp_path / "clone")
    assert default_isbi_root() == shared.resolve()
    monkeypatch.setattr(isbi, "_PROJECT_ROOT", tmp_path / "clone")
    monkeypatch.chdir("/")
    assert default_isbi_root() == shared.resolve()
    shutil.rmtree(tmp_path / "shared")
    assert default_isbi_root() is None


def test_isbi_sums_in_the_package_match_the_shared_sums_file():
    sums_file = SHARED_ISBI / "SHA256SUMS"
    if not sums_file.is_file():
        pytest.skip(f"no {sums_file}: the ISBI 2012 copy is not beside this clone")
    listed = dict(reversed(line.split()) for line in sums_file.read_text().splitlines() if line)
    assert listed == ISBI2012_SHA256 and len(listed) == 60


def test_isbi_download_from_a_local_server_then_offline_and_corrupt(tmp_path):
    source = make_isbi(tmp_path / "fake")  # files whose sums are not the real ones
    target = tmp_path / "target"
    with serve(source) as url:
        with pytest.raises(ValueError, match=r"checksum mismatch for .*/train/image/0.png: sha256"):
            download_isbi2012(target, mirrors=f"{url}/train")
        with pytest.raises(FileNotFoundError, match=r"HTTP 404"):
            fetch(f"{url}/none.png", target / "none.png", checksum=("sha256", "0" * 64))
    assert not any(target.rglob("*.png*"))  # nothing corrupt or partial was kept
    offline = closed_port_url()
    with pytest.raises(
        ConnectionError, match=r"could not download 0.png:\n  1\. http://127\.0\.0\.1:\d+/image/"
        r"0\.png cannot be reached .*\nDownload it by hand .* place the file at \S*image/0\.png"
    ):
        download_isbi2012(target, mirrors=offline)
    with pytest.raises(ValueError, match=r"checksum algorithm must be one of \('md5', 'sha256'\), got 'sha1'"):
        fetch(f"{offline}/x", target / "x", checksum=("sha1", "0"))


def test_fetch_copies_a_file_url_and_skips_a_file_already_there(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"segmentation" * 100)
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    target = fetch(source.as_uri(), tmp_path / "out" / "copy.bin", checksum=("sha256", sha256))
    assert target.read_bytes() == source.read_bytes()
    source.unlink()  # the copy is there with the right sum: no download is attempted
    assert fetch(source.as_uri(), target, checksum=("sha256", sha256)) == target
    with pytest.raises(FileNotFoundError, match=r"file://.*source.bin does not exist"):
        fetch(source.as_uri(), tmp_path / "other.bin", checksum=("sha256", sha256))


# ---------------------------------------------------------------- ISBI 2012, real data

needs_isbi = pytest.mark.skipif(
    default_isbi_root() is None,
    reason=f"ISBI 2012 copy not found (looked for {SHARED_ISBI}, or set SEGTUTOR_ISBI_ROOT)",
)


@needs_isbi
def test_isbi_real_slices_match_the_png_files():
    root = default_isbi_root()
    data = ISBI2012(root, split="all")
    membrane_pixels = total_pixels = 0
    for n in (0, 13, 29):
        image, mask = data[n]
        pixels = np.array(Image.open(root / "train" / "image" / f"{n}.png"))
        labels = np.array(Image.open(root / "train" / "label" / f"{n}.png"))
        assert image.shape == (1, 512, 512) and mask.shape == (512, 512)
        assert torch.equal(image[0], torch.from_numpy(pixels).float() / 255)
        assert torch.equal(mask, torch.from_numpy((labels == 255).astype(np.int64)))
        membrane_pixels += int((labels == 0).sum())
        total_pixels += labels.size
    assert 0.15 < membrane_pixels / total_pixels < 0.30  # the README says about 22 %
    assert data.slices[25:] == list(ISBI2012(root, split="test").slices) == [25, 26, 27, 28, 29]


@needs_isbi
def test_isbi_download_of_the_real_files_from_a_local_server(tmp_path, monkeypatch):
    with serve(default_isbi_root()) as url:
        monkeypatch.setattr(isbi, "ISBI2012_MIRRORS", (f"{url}/train",))
        data = ISBI2012(tmp_path, split="test", download=True)
    for relative in ("image/27.png", "label/3.png"):
        assert (tmp_path / "train" / relative).read_bytes() == (
            default_isbi_root() / "train" / relative
        ).read_bytes()
    assert len(data) == 5
    monkeypatch.setattr(isbi, "ISBI2012_MIRRORS", (closed_port_url(),))
    assert len(ISBI2012(tmp_path, download=True)) == 25  # all present: nothing to fetch
