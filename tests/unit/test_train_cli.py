"""python -m segtutor.train: trains, writes its files, resumes, and refuses bad values in one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader

from segtutor import models
from segtutor.data import Shapes
from segtutor.train import History, evaluate
from segtutor.train.__main__ import SHAPES_VAL_IMAGES, main

TINY = ["--model", "tiny_fcn", "--data", "shapes", "--image-size", "32", "--train-images", "16",
        "--batch-size", "8", "--lr", "3e-3", "--device", "cpu", "--no-progress"]


def test_trains_writes_its_files_and_reports_the_saved_weights_miou(tmp_path, capsys):
    out = tmp_path / "run"
    history = main([*TINY, "--epochs", "2", "--out", str(out)])
    assert history.step[-1] == 4 and history.stop_reason == "epochs"  # 16 images / 8 per step
    saved = History.from_dict(json.loads((out / "history.json").read_text()))
    assert saved == history
    with (out / "history.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [float(r["val_miou"]) for r in rows] == pytest.approx(history.val_miou)
    assert (out / "history.png").stat().st_size > 0
    # the printed mIoU is the validation of the checkpoint's weights, measured again here
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    net = models.create("tiny_fcn", num_classes=4)
    net.load_state_dict(checkpoint["model"])
    val = Shapes(length=SHAPES_VAL_IMAGES, size=32, seed=1)
    again = evaluate(net, DataLoader(val, batch_size=32), Shapes.num_classes, device="cpu")
    assert again["mean_iou"] == pytest.approx(history.val_miou[-1], abs=1e-6)
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith(f"tiny_fcn on shapes: validation mIoU {history.val_miou[-1]:.4f}")


def test_a_seed_fixes_the_run(tmp_path):
    first = main([*TINY, "--epochs", "1", "--seed", "3", "--out", str(tmp_path / "a")])
    second = main([*TINY, "--epochs", "1", "--seed", "3", "--out", str(tmp_path / "b")])
    assert first.step_loss == second.step_loss


def test_never_overwrites_a_checkpoint_and_resumes_one(tmp_path, capsys):
    out = tmp_path / "run"
    done = main([*TINY, "--epochs", "1", "--out", str(out)])
    with pytest.raises(SystemExit) as stopped:
        main([*TINY, "--epochs", "1", "--out", str(out)])
    assert stopped.value.code == 2
    assert "checkpoint.pt exists; pass --resume to continue it" in capsys.readouterr().err
    resumed = main([*TINY, "--epochs", "1", "--out", str(out), "--resume"])
    assert resumed.step == done.step  # the run was complete: nothing more to do
    with pytest.raises(SystemExit):
        main([*TINY, "--epochs", "1", "--out", str(tmp_path / "new"), "--resume"])
    assert "--resume: no checkpoint at" in capsys.readouterr().err


def test_resuming_with_other_epochs_is_refused_before_training(tmp_path, capsys):
    # the one-cycle schedule of the first call spans its 2 epochs of 2 steps; more epochs
    # would stretch a begun schedule (OneCycleLR would restore its old length and stop)
    out = tmp_path / "run"
    main([*TINY, "--epochs", "2", "--out", str(out)])
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(SystemExit) as stopped:
        main([*TINY, "--epochs", "3", "--out", str(out), "--resume"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith("--resume with --epochs 3: the checkpoint's one-cycle schedule spans 4 "
                          "steps (2 epochs of 2), not 6; a begun one-cycle schedule cannot be "
                          "stretched. Resume with --epochs 2, or start a new run in another --out")
    assert (out / "checkpoint.pt").read_bytes() == before  # nothing was touched


@pytest.mark.parametrize("argv, message", [
    (["--model", "nope", "--data", "shapes", "--epochs", "1"],
     "--model must be one of ['deeplab_v1', "),
    (["--model", "tiny_fcn", "--data", "coco", "--epochs", "1"],
     "argument --data: invalid choice: 'coco'"),
    (["--model", "tiny_fcn", "--data", "shapes", "--time-budget", "-5"],
     "argument --time-budget: must be a positive float, got '-5'"),
    (["--model", "tiny_fcn", "--data", "shapes", "--epochs", "1.5"],
     "argument --epochs: must be a positive int, got '1.5'"),
    (["--model", "tiny_fcn", "--data", "shapes", "--epochs", "1", "--time-budget", "9"],
     "argument --time-budget: not allowed with argument --epochs"),
    (["--model", "tiny_fcn", "--data", "shapes"],
     "one of the arguments --epochs --time-budget is required"),
    (["--model", "tiny_fcn", "--data", "voc", "--epochs", "1"], "--data voc needs --data-root"),
    (["--model", "tiny_fcn", "--data", "pets", "--epochs", "1", "--data-root", "/nonexistent"],
     "Oxford-IIIT Pet"),
    (["--model", "tiny_fcn", "--data", "shapes", "--epochs", "1", "--device", "tpu"],
     "unknown device 'tpu'"),
    (["--model", "tiny_fcn", "--data", "shapes", "--epochs", "1", "--sync-bn"],
     "--sync-bn synchronises batch norm across processes: run under torchrun"),
    (["--model", "tiny_fcn", "--data", "shapes", "--epochs", "1", "--model-kwargs", "[16]"],
     "argument --model-kwargs: must be a JSON object"),
    (["--model", "tiny_fcn", "--data", "shapes", "--epochs", "1", "--model-kwargs",
      '{"width": -4}'], "width must be a positive int, got -4"),
])
def test_bad_values_end_in_one_line_naming_them(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--out", str(tmp_path / "run")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("segtutor.train: error: ")
    assert message in err
    assert not (tmp_path / "run").exists()  # nothing written for a refused command


def test_tiny_and_model_kwargs_reach_the_builder(tmp_path):
    main([*TINY, "--epochs", "1", "--tiny", "--model-kwargs", '{"width": 6}',
          "--out", str(tmp_path / "run")])
    first = next(iter(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
                      .values()))
    assert first.shape[0] == 6  # the builder's width, over its tiny_kwargs' 4


def test_the_papers_unet_trains_through_overlap_tile(tmp_path):
    # valid convolutions: the network's output is smaller than its input, and UNet's
    # overlap-tile forward returns logits at the image's size, so fit and the metrics work
    history = main(["--model", "unet_paper", "--tiny", "--data", "shapes", "--image-size", "32",
                    "--train-images", "4", "--batch-size", "2", "--epochs", "1", "--device", "cpu",
                    "--no-progress", "--out", str(tmp_path / "run")])
    assert history.step[-1] == 2 and 0 <= history.val_miou[-1] <= 1
    net = models.create("unet_paper", num_classes=4, in_channels=3,
                        **models.model_info("unet_paper").tiny_kwargs)
    net.load_state_dict(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"])
    assert net.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 4, 32, 32)


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "segtutor.train", "--help"],
                            capture_output=True, text=True, timeout=120, check=True)
    for option in ("--model", "--data", "--data-root", "--epochs", "--time-budget",
                   "--batch-size", "--lr", "--image-size", "--amp", "--channels-last",
                   "--compile", "--seed", "--out", "--resume"):
        assert option in result.stdout


def test_isbi_trains_on_one_channel_crops_and_validates_on_the_held_out_slices(tmp_path):
    from segtutor.data import default_isbi_root

    root = default_isbi_root()
    if root is None:
        pytest.skip("ISBI 2012 not available (see segtutor.data.default_isbi_root)")
    out = tmp_path / "isbi"
    history = main(["--model", "tiny_fcn", "--data", "isbi", "--data-root", str(root),
                    "--image-size", "64", "--train-images", "8", "--batch-size", "4",
                    "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert history.step[-1] == 2 and 0 <= history.val_miou[-1] <= 1
    weights = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    first, last = next(iter(weights.values())), list(weights.values())[-1]
    assert first.shape[1] == 1 and last.shape[0] == 2  # grey slices in, membrane/cell out
