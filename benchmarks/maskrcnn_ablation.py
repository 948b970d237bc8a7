"""Chapter 11's Mask R-CNN ablations over several seeds, saved as a small CSV the chapter reads.

Run from the repository root::

    python benchmarks/maskrcnn_ablation.py                      # 3 variants x 3 seeds, CPU
    python benchmarks/maskrcnn_ablation.py --seeds 0 --variants align pool
    python benchmarks/maskrcnn_ablation.py --seeds 2 --out /tmp/seed2.csv &  # in parallel,
    python benchmarks/maskrcnn_ablation.py --seeds 0 1 --merge /tmp/seed2.csv  # then merged

Every run is ``segtutor.recipes.MASK_RCNN_SHAPES`` -- the recipe Chapter 11 trains once --
with another seed and one of ``MASK_RCNN_VARIANTS``: the paper's Table 2 in miniature, under
one budget of steps. ``align`` is Mask R-CNN (segtutor's RoIAlign, per-class sigmoid masks);
``pool`` the same detector with Fast R-CNN's RoIPool for the box and mask RoIs (Table 2c:
RoIPool 26.9 -> RoIAlign 30.3 mask AP on ResNet-50-C4, the gain growing at stricter IoU);
``softmax`` RoIAlign with a per-pixel softmax over the classes instead of per-class sigmoid
masks (Table 2b: 30.3 sigmoid vs 24.8 softmax AP). Each row holds the held-out COCO mask
AP, AP50 and AP75, the box AP, and the training seconds. The CSV
(``benchmarks/results/maskrcnn_ablation.csv`` by default) starts with comment lines naming
the machine, the date and the command; ``--out -`` prints it only.
"""

from __future__ import annotations

import os
from pathlib import Path

from segtutor.bench import (
    mean_of,
    parse_sweep,
    run_sweep,
    seed_table,
    sweep_parser,
)
from segtutor.recipes import MASK_RCNN_SHAPES, MASK_RCNN_VARIANTS

DEFAULT_OUT = Path(__file__).parent / "results" / "maskrcnn_ablation.csv"
FIELDS = ("variant", "seed", "mask_AP", "mask_AP50", "mask_AP75", "box_AP", "seconds")
SCORES = ("mask_AP", "mask_AP50", "mask_AP75", "box_AP")


def run(variant: str, seed: int) -> dict[str, object]:
    """Train and evaluate one variant of the recipe."""
    roi_pooler, mask_loss = MASK_RCNN_VARIANTS[variant]
    net, _, seconds = MASK_RCNN_SHAPES.train(seed=seed, roi_pooler=roi_pooler,
                                             mask_loss=mask_loss, device="cpu")
    scores = MASK_RCNN_SHAPES.evaluate(net)
    return {"variant": variant, "seed": seed, **{key: round(scores[key], 4) for key in SCORES},
            "seconds": round(seconds, 1)}


def load_average() -> list[str]:
    """The machine's load at the end of the sweep: the seconds depend on it."""
    return ["load average (1, 5, 15 min) at the end: "
            + ", ".join(f"{x:.2f}" for x in os.getloadavg())]


def summary(rows: list[dict[str, object]]) -> str:
    """Markdown: mean (min-max) of each score per variant, and the mean training seconds."""
    return seed_table(rows, list(MASK_RCNN_VARIANTS), label="variant", columns=[
        ("mask AP", "mask_AP"), ("mask AP50", "mask_AP50"), ("mask AP75", "mask_AP75"),
        ("box AP", "box_AP"),
        ("s", mean_of("seconds", 0))])


def main(argv: list[str] | None = None) -> None:
    parser = sweep_parser(__doc__.split("\n")[0], MASK_RCNN_VARIANTS, DEFAULT_OUT)
    args = parse_sweep(parser, argv)
    rows = run_sweep(run, args, list(MASK_RCNN_VARIANTS), FIELDS,
                     "benchmarks/maskrcnn_ablation.py", argv,
                     seed_major=True, comments=load_average)
    print(summary(rows))

if __name__ == "__main__":
    main()
