"""Chapter 8's two-minute U-Net on ISBI 2012, over several seeds, with and without its parts.

Run from the repository root (the ISBI 2012 PNGs must be at ``../shared/data/isbi2012`` or
at ``--root``)::

    python benchmarks/isbi_unet.py                      # 2 recipes x 3 seeds x 120 s
    python benchmarks/isbi_unet.py --seeds 0 --budget 60 --recipes jitter

One training run is noisy: the number of steps that fit into the time budget depends on
the machine's load, and the held-out mIoU moves by a few thousandths from seed to seed.
A chapter can afford one run; this script measures the spread. Every run trains Chapter 8's
recipe, ``segtutor.recipes.ISBI_UNET`` -- the same object the chapter trains on a CPU, so
the two cannot drift apart: a ``unet(base_channels=16)`` (1.94 M parameters) on random
128 x 128 crops of slices 0-24 (batches of 8, flips and 90-degree rotations, AdamW at 3e-3
with weight decay 1e-4, ``segtutor.train.one_cycle_in_time``, cross-entropy + soft Dice,
bfloat16 autocast and channels_last on the CPU when ``--amp``), then predicts the full
held-out slices 25-29 once and averaged over the 8 rotations and flips
(``segtutor.ops.tiling.SymmetryAverage``). ``--budget`` changes only the seconds of training.

Recipes:

* ``flips``: the augmentation above only (Chapter 8's recipe);
* ``jitter``: plus ``v2.ColorJitter(brightness=0.2, contrast=0.2)`` (the recipe's
  ``jitter=True``; measured: no gain, so Chapter 8 uses ``flips``).

It prints one Markdown row per run and a summary per recipe (mean, min and max).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

from segtutor.bench import mean_and_range
from segtutor.data import default_isbi_root
from segtutor.recipes import ISBI_UNET, ISBIUNetRecipe, load_isbi

RECIPES = ("flips", "jitter")

Pairs = list[tuple[torch.Tensor, torch.Tensor]]


def recipe_for(name: str, budget: float) -> ISBIUNetRecipe:
    """Chapter 8's CPU recipe (``flips``), or it with colour jitter, trained ``budget`` seconds.

    Raises:
        ValueError: ``name`` is not one of :data:`RECIPES`.
    """
    if name not in RECIPES:
        raise ValueError(f"name must be one of {RECIPES}, got {name!r}")
    return dataclasses.replace(ISBI_UNET, budget=budget, jitter=name == "jitter")


def run(recipe: ISBIUNetRecipe, seed: int, amp: bool, train_pairs: Pairs, test_pairs: Pairs,
        normalize: v2.Normalize) -> dict[str, float]:
    """Train and evaluate one seed of ``recipe`` on the CPU; the figures of one table row."""
    net, history = recipe.train(recipe.train_loader(train_pairs, normalize), seed=seed, amp=amp,
                                device="cpu")
    results = recipe.evaluate(net, recipe.test_loader(test_pairs, normalize), device="cpu")
    one_pass, averaged = results["one pass"], results["8 rotations/flips"]
    return {"steps": history.step[-1], "seconds": sum(history.seconds),
            "miou": one_pass["mean_iou"], "accuracy": one_pass["pixel_accuracy"],
            "miou_8": averaged["mean_iou"], "accuracy_8": averaged["pixel_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=ISBI_UNET.budget,
                        help="seconds of training per run (default: the chapter's)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                        help="bfloat16 autocast + channels_last (default: on; use --no-amp on "
                             "CPUs without native bfloat16)")
    parser.add_argument("--root", type=Path, default=None, help="ISBI 2012 folder")
    args = parser.parse_args()
    root = args.root or default_isbi_root()
    if root is None:
        raise SystemExit("ISBI 2012 not found: pass --root or put it at ../shared/data/isbi2012")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, budget {args.budget:g} s, "
          f"amp {args.amp}\n")
    print("| recipe | seed | steps | mIoU, one pass | accuracy | mIoU, 8-fold | accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results: dict[str, list[dict[str, float]]] = {}
    started = time.perf_counter()
    train_pairs, test_pairs = load_isbi(root)
    normalize = ISBI_UNET.normalization(train_pairs)
    for recipe in args.recipes:
        for seed in args.seeds:
            r = run(recipe_for(recipe, args.budget), seed, args.amp, train_pairs, test_pairs,
                    normalize)
            results.setdefault(recipe, []).append(r)
            print(f"| {recipe} | {seed} | {r['steps']} | {r['miou']:.4f} | {r['accuracy']:.4f} "
                  f"| {r['miou_8']:.4f} | {r['accuracy_8']:.4f} |", flush=True)
    print("\n| recipe | runs | mIoU, one pass: mean (min-max) | mIoU, 8-fold: mean (min-max) "
          "| accuracy, 8-fold: mean |")
    print("|---|---:|---|---|---:|")
    for recipe, runs in results.items():
        spread = mean_and_range([r["miou"] for r in runs], digits=4)
        spread_8 = mean_and_range([r["miou_8"] for r in runs], digits=4)
        print(f"| {recipe} | {len(runs)} | {spread} | {spread_8} "
              f"| {statistics.mean(r['accuracy_8'] for r in runs):.4f} |")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
