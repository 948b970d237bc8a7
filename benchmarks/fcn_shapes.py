"""Chapter 6's FCN-32s / 16s / 8s experiment over several seeds, saved as a small CSV the chapter reads.

Run from the repository root::

    python benchmarks/fcn_shapes.py                           # 3 networks x 3 seeds, CPU
    python benchmarks/fcn_shapes.py --seeds 0 --variants fcn32s fcn8s

Every run is ``segtutor.recipes.FCN_SHAPES`` -- the recipe Chapter 6 trains once per
network -- with another seed: a narrow FCN on VGG16's layout (8 channels in the first stage,
batch norm, fc6 and fc7 64 wide) on ``Shapes`` (96-pixel images, 240 steps of 8), with no
skip (FCN-32s), pool4's scores fused (FCN-16s) and pool4's and pool3's (FCN-8s). Each row
holds the held-out pixel accuracy, mIoU, trimap IoU (2 px band) and Boundary IoU, the
parameters and the seconds per training step. The CSV (``benchmarks/results/fcn_shapes.csv``
by default) starts with comment lines naming the machine, the date and the command;
``--out -`` prints it only; ``--merge`` adds the rows of runs made in parallel.
"""

from __future__ import annotations

from pathlib import Path

from segtutor.bench import (
    count_parameters,
    mean_of,
    parse_sweep,
    run_sweep,
    seed_table,
    sweep_parser,
)
from segtutor.recipes import FCN_SHAPES, FCN_VARIANTS

DEFAULT_OUT = Path(__file__).parent / "results" / "fcn_shapes.csv"
FIELDS = ("variant", "seed", "output_stride", "parameters", "seconds_per_step",
          "pixel_accuracy", "miou", "trimap_iou", "boundary_iou")


def run(variant: str, seed: int) -> dict[str, object]:
    """Train and evaluate one network of the recipe."""
    images, masks = FCN_SHAPES.val_tensors()
    net, history, seconds = FCN_SHAPES.train(variant, seed=seed, device="cpu")
    scores = FCN_SHAPES.evaluate(net, images, masks)
    return {"variant": variant, "seed": seed, "output_stride": FCN_VARIANTS[variant],
            "parameters": count_parameters(net),
            "seconds_per_step": round(seconds / history.step[-1], 4),
            **{key: round(value, 4) for key, value in scores.items()}}


def summary(rows: list[dict[str, object]]) -> str:
    """Markdown: mean (min-max) of each score per network, and the mean seconds per step."""
    return seed_table(rows, list(FCN_VARIANTS), [
        ("pixel accuracy", "pixel_accuracy"), ("mIoU", "miou"), ("trimap IoU", "trimap_iou"),
        ("Boundary IoU", "boundary_iou"),
        ("s/step", mean_of("seconds_per_step", 3))])


def main(argv: list[str] | None = None) -> None:
    parser = sweep_parser(__doc__.split("\n")[0], FCN_VARIANTS, DEFAULT_OUT)
    args = parse_sweep(parser, argv)
    rows = run_sweep(run, args, list(FCN_VARIANTS), FIELDS,
                     "benchmarks/fcn_shapes.py", argv)
    print(summary(rows))

if __name__ == "__main__":
    main()
