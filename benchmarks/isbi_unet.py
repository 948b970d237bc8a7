"""Chapter 8's two-minute U-Net on ISBI 2012 over several seeds, with and without its parts.

Run from the repository root (the ISBI 2012 PNGs must be at ``../shared/data/isbi2012`` or
at ``--root``)::

    python benchmarks/isbi_unet.py                      # 5 variants x 3 seeds x 120 s
    python benchmarks/isbi_unet.py --seeds 0 --budget 60 --variants ce+dice elastic

One training run is noisy: the number of steps that fit into the time budget depends on
the machine's load, and the held-out scores move from seed to seed. A chapter can afford
one run; this script measures the spread and the ablations. Every run trains Chapter 8's
recipe, ``segtutor.recipes.ISBI_UNET`` -- the same object the chapter trains, so the two
cannot drift apart -- with one field changed: a ``unet(base_channels=16)`` (1.94 M
parameters) on random 128 x 128 crops of slices 0-24 (batches of 8, flips and 90-degree
rotations, AdamW at 3e-3 with weight decay 1e-4, ``segtutor.train.one_cycle_in_time``,
cross-entropy + soft Dice; bfloat16 autocast and channels_last only with ``--amp``),
then predicts the full held-out slices 25-29 once and averaged over the 8 rotations and
flips (``segtutor.ops.tiling.SymmetryAverage``). ``--budget`` changes only the seconds of
training; the variants (seed-major, so that a loaded machine slows them alike):

* ``ce+dice``: Chapter 8's recipe;
* ``ce``: cross-entropy alone (``dice=False``);
* ``weights``: the cross-entropy weighted by the paper's weight map (``weight_map=True``);
* ``elastic``: plus the paper's elastic deformation (``elastic=True``, a 3 x 3 grid, 10 px);
* ``jitter``: plus ``v2.ColorJitter(brightness=0.2, contrast=0.2)`` (``jitter=True``).

``--slices N`` trains on the first N training slices only (the paper's claim for elastic
deformation is about *few* annotated images). Each row of the CSV
(``benchmarks/results/isbi_unet.csv`` by default; it starts with comment lines naming the
machine, the date and the command) holds the steps done, the held-out pixel accuracy and
mIoU of both predictions, and ISBI 2012's own scores of the 8-fold prediction
(``segtutor.metrics.isbi_scores``: foreground-restricted Rand error with its split and
merge scores, and the split and merge terms of the variation of information).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from segtutor.bench import mean_of, parse_sweep, run_sweep, seed_table, sweep_parser
from segtutor.data import default_isbi_root
from segtutor.recipes import ISBI_UNET, ISBIUNetRecipe, load_isbi

DEFAULT_OUT = Path(__file__).parent / "results" / "isbi_unet.csv"

#: variant -> the field of Chapter 8's recipe it changes (none for ``ce+dice``).
VARIANTS: dict[str, dict[str, bool]] = {
    "ce+dice": {},
    "ce": {"dice": False},
    "weights": {"weight_map": True},
    "elastic": {"elastic": True},
    "jitter": {"jitter": True},
}
FIELDS = ("variant", "seed", "slices", "budget", "steps", "pixel_accuracy", "miou",
          "pixel_accuracy_8", "miou_8", "rand_error", "rand_split", "rand_merge", "vi_split",
          "vi_merge")


def recipe_for(name: str, budget: float) -> ISBIUNetRecipe:
    """Chapter 8's CPU recipe with variant ``name``'s field changed, trained ``budget`` seconds.

    Raises:
        ValueError: ``name`` is not one of :data:`VARIANTS`.
    """
    if name not in VARIANTS:
        raise ValueError(f"name must be one of {tuple(VARIANTS)}, got {name!r}")
    return dataclasses.replace(ISBI_UNET, budget=budget, **VARIANTS[name])


def summary(rows: list[dict[str, object]]) -> str:
    """Markdown: mean (min-max) of each score per variant, and the mean number of steps."""
    return seed_table(rows, list(VARIANTS), [
        ("steps", mean_of("steps", 0)), ("mIoU, one pass", "miou"), ("mIoU, 8-fold", "miou_8"),
        ("accuracy, 8-fold", "pixel_accuracy_8"), ("Rand error, 8-fold", "rand_error"),
        ("VI split", "vi_split"), ("VI merge", "vi_merge")], label="variant", digits=4)


def main(argv: list[str] | None = None) -> None:
    parser = sweep_parser(__doc__.split("\n")[0], VARIANTS, DEFAULT_OUT)
    parser.add_argument("--budget", type=float, default=ISBI_UNET.budget,
                        help="seconds of training per run (default: the chapter's)")
    parser.add_argument("--slices", type=int, default=25,
                        help="train on the first N of the 25 training slices (default all)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                        help="bfloat16 autocast + channels_last (default: off; on a CPU without "
                             "native bfloat16 it is several times slower, as Chapter 8 measures)")
    parser.add_argument("--root", type=Path, default=None, help="ISBI 2012 folder")
    args = parse_sweep(parser, argv)
    if not 1 <= args.slices <= 25:
        parser.error(f"--slices must be between 1 and 25, got {args.slices}")
    root = args.root or default_isbi_root()
    if root is None:
        parser.error("ISBI 2012 not found: pass --root or put it at ../shared/data/isbi2012")
    train_pairs, test_pairs = load_isbi(root)
    train_pairs = train_pairs[:args.slices]
    normalize = ISBI_UNET.normalization(train_pairs)
    test_loader = ISBI_UNET.test_loader(test_pairs, normalize)

    def run(variant: str, seed: int) -> dict[str, object]:
        recipe = recipe_for(variant, args.budget)
        net, history = recipe.train(recipe.train_loader(train_pairs, normalize), seed=seed,
                                    amp=args.amp, device="cpu")
        results = recipe.evaluate(net, test_loader, device="cpu")
        one_pass, averaged = results["one pass"], results["8 rotations/flips"]
        return {"variant": variant, "seed": seed, "slices": args.slices, "budget": args.budget,
                "steps": history.step[-1],
                "pixel_accuracy": round(one_pass["pixel_accuracy"], 4),
                "miou": round(one_pass["mean_iou"], 4),
                "pixel_accuracy_8": round(averaged["pixel_accuracy"], 4),
                "miou_8": round(averaged["mean_iou"], 4),
                **{key: round(averaged[key], 4) for key in FIELDS[9:]}}

    rows = run_sweep(run, args, list(VARIANTS), FIELDS, "benchmarks/isbi_unet.py", argv,
                     seed_major=True,
                     comments=lambda: [f"load average at the end: {os.getloadavg()[0]:.2f}"])
    print(summary(rows))



if __name__ == "__main__":
    main()
