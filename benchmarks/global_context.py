"""Chapter 10's global-context experiment over several seeds, saved as a small CSV the chapter reads.

Run from the repository root::

    python benchmarks/global_context.py                        # 5 networks x 3 seeds, CPU
    python benchmarks/global_context.py --seeds 0 --variants fcn fcn+ppm

Every run is ``segtutor.recipes.GLOBAL_CONTEXT`` -- the recipe Chapter 10 trains once per
network -- with another seed: a small FCN of output stride 8 on ``FramedShapes`` (a shape's
class is its kind x the colour of a frame at the image's border), plain, with PSPNet's
pyramid pooling (bins 1, 2, 3, 6), with DeepLab v3's head (ASPP with image pooling), and two
ablations of the pyramid: the global 1x1 bin alone, and max instead of average pooling.
Each row holds the held-out mIoU, the mIoU of the kinds alone (frame colours merged), the
frame error (shape pixels of the right kind given the wrong frame colour), the parameters
and the seconds per training step. The CSV (``benchmarks/results/global_context.csv`` by
default) starts with comment lines naming the machine, the date and the command; ``--out -``
prints it only.
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
from segtutor.recipes import GLOBAL_CONTEXT, GLOBAL_CONTEXT_VARIANTS

DEFAULT_OUT = Path(__file__).parent / "results" / "global_context.csv"
FIELDS = ("variant", "seed", "parameters", "seconds_per_step", "miou", "kind_miou",
          "frame_error")


def run(variant: str, seed: int) -> dict[str, object]:
    """Train and evaluate one network of the recipe."""
    images, masks = GLOBAL_CONTEXT.val_tensors()
    net, history, seconds = GLOBAL_CONTEXT.train(variant, seed=seed, device="cpu")
    scores = GLOBAL_CONTEXT.evaluate(net, images, masks)
    return {"variant": variant, "seed": seed, "parameters": count_parameters(net),
            "seconds_per_step": round(seconds / history.step[-1], 4),
            **{key: round(scores[key], 4) for key in ("miou", "kind_miou", "frame_error")}}


def summary(rows: list[dict[str, object]]) -> str:
    """Markdown: mean (min-max) of each score per variant."""
    return seed_table(rows, list(GLOBAL_CONTEXT_VARIANTS), [
        ("parameters", lambda runs: f"{int(runs[0]['parameters']):,}"),
        ("mIoU", "miou"), ("kinds' mIoU", "kind_miou"), ("frame error", "frame_error"),
        ("s/step", mean_of("seconds_per_step", 3))])


def main(argv: list[str] | None = None) -> None:
    parser = sweep_parser(__doc__.split("\n")[0], GLOBAL_CONTEXT_VARIANTS, DEFAULT_OUT)
    args = parse_sweep(parser, argv)
    rows = run_sweep(run, args, list(GLOBAL_CONTEXT_VARIANTS), FIELDS,
                     "benchmarks/global_context.py", argv)
    print(summary(rows))

if __name__ == "__main__":
    main()
