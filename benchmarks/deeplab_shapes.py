"""Chapter 9's two DeepLab experiments over several seeds, saved as a small CSV the chapter reads.

Run from the repository root::

    python benchmarks/deeplab_shapes.py                       # 5 networks x 3 seeds, CPU
    python benchmarks/deeplab_shapes.py --seeds 0 --variants os8 os32

Every run is ``segtutor.recipes.DEEPLAB_SHAPES`` -- the recipe Chapter 9 trains once per
network -- with another seed: a narrow DeepLab on ``Shapes`` (96-pixel images, 240 steps of
8) at output stride 32, 16 and 8 (v3's head: ASPP with image pooling), and at output stride
8 with LargeFOV's single-rate head and with ASPP without image pooling. Each row holds the
held-out mIoU, trimap IoU (2 px band) and Boundary IoU, the parameters and the seconds per
training step. The CSV (``benchmarks/results/deeplab_shapes.csv`` by default) starts with
comment lines naming the machine, the date and the command; ``--out -`` prints it only.
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
from segtutor.recipes import DEEPLAB_SHAPES, DEEPLAB_VARIANTS

DEFAULT_OUT = Path(__file__).parent / "results" / "deeplab_shapes.csv"
FIELDS = ("variant", "seed", "output_stride", "rates", "parameters", "seconds_per_step", "miou",
          "trimap_iou", "boundary_iou")


def run(variant: str, seed: int) -> dict[str, object]:
    """Train and evaluate one network of the recipe."""
    images, masks = DEEPLAB_SHAPES.val_tensors()
    net, history, seconds = DEEPLAB_SHAPES.train(variant, seed=seed, device="cpu")
    scores = DEEPLAB_SHAPES.evaluate(net, images, masks)
    return {"variant": variant, "seed": seed, "output_stride": net.output_stride,
            "rates": " ".join(map(str, net.atrous_rates)), "parameters": count_parameters(net),
            "seconds_per_step": round(seconds / history.step[-1], 4),
            **{key: round(value, 4) for key, value in scores.items()}}


def summary(rows: list[dict[str, object]]) -> str:
    """Markdown: mean (min-max) of each score per variant, and the mean seconds per step."""
    return seed_table(rows, list(DEEPLAB_VARIANTS), [
        ("mIoU", "miou"), ("trimap IoU", "trimap_iou"), ("Boundary IoU", "boundary_iou"),
        ("s/step", mean_of("seconds_per_step", 3))])


def main(argv: list[str] | None = None) -> None:
    parser = sweep_parser(__doc__.split("\n")[0], DEEPLAB_VARIANTS, DEFAULT_OUT)
    args = parse_sweep(parser, argv)
    rows = run_sweep(run, args, list(DEEPLAB_VARIANTS), FIELDS,
                     "benchmarks/deeplab_shapes.py", argv)
    print(summary(rows))

if __name__ == "__main__":
    main()
