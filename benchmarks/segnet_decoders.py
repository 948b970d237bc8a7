"""Chapter 7's SegNet decoder variants over several seeds, saved as a small CSV the chapter reads.

Run from the repository root::

    python benchmarks/segnet_decoders.py                       # 4 decoders x 3 seeds, CPU
    python benchmarks/segnet_decoders.py --seeds 0 --variants indices bilinear
    python benchmarks/segnet_decoders.py --steps 960 --out benchmarks/results/segnet_decoders_960.csv

Every run is ``segtutor.recipes.SEGNET_SHAPES`` -- the recipe Chapter 7 trains -- with
another seed: a narrow SegNet (12 channels in the first stage) on ``Shapes`` (64-pixel
images, 240 steps of 8) whose decoder stages upsample by max unpooling with the encoder's
indices (SegNet), by nearest or bilinear interpolation (no indices, the same weights), or
bilinearly with a learned 1x1 projection of the encoder's pooled map added (FCN's skips; the
paper's FCN-Basic) -- the paper's decoder-variant study in miniature. ``--steps`` changes
only the length of training (the one-cycle schedule stretches with it). Each row holds the
held-out pixel accuracy, mIoU, trimap IoU (2 px band) and Boundary IoU, the parameters, the
seconds per training step, and the bytes the decoder reads from the encoder besides its
deepest map for one image (``SegNet.from_encoder``: indices as PyTorch's int64, pooled maps
as float32) -- what the network must keep from the encoder at inference. The CSV
(``benchmarks/results/segnet_decoders.csv`` by default) starts with comment lines naming the
machine, the date and the command; ``--out -`` prints it only; ``--merge`` adds the rows of
runs made in parallel.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from segtutor.bench import (
    count_parameters,
    mean_of,
    parse_sweep,
    run_sweep,
    seed_table,
    sweep_parser,
)
from segtutor.models.segnet import SEGNET_UPSAMPLINGS
from segtutor.recipes import SEGNET_SHAPES, SegNetShapesRecipe

DEFAULT_OUT = Path(__file__).parent / "results" / "segnet_decoders.csv"
FIELDS = ("variant", "seed", "parameters", "seconds_per_step", "from_encoder_bytes",
          "pixel_accuracy", "miou", "trimap_iou", "boundary_iou")


def from_encoder_bytes(net: torch.nn.Module, image: torch.Tensor) -> int:
    """Bytes of the tensors ``net``'s decoder reads from its encoder for one ``image``."""
    with torch.no_grad():
        return sum(t.numel() * t.element_size()
                   for t in net.from_encoder(net.encode(image[None])))


def run(variant: str, seed: int, recipe: SegNetShapesRecipe = SEGNET_SHAPES) -> dict[str, object]:
    """Train and evaluate one network of ``recipe``."""
    images, masks = recipe.val_tensors()
    net, history, seconds = recipe.train(variant, seed=seed, device="cpu")
    scores = recipe.evaluate(net, images, masks)
    return {"variant": variant, "seed": seed, "parameters": count_parameters(net),
            "seconds_per_step": round(seconds / history.step[-1], 4),
            "from_encoder_bytes": from_encoder_bytes(net.eval(), images[0]),
            **{key: round(value, 4) for key, value in scores.items()}}


def summary(rows: list[dict[str, object]]) -> str:
    """Markdown: mean (min-max) of each score per decoder, and the mean seconds per step."""
    return seed_table(rows, list(SEGNET_UPSAMPLINGS), [
        ("pixel accuracy", "pixel_accuracy"), ("mIoU", "miou"), ("trimap IoU", "trimap_iou"),
        ("Boundary IoU", "boundary_iou"),
        ("s/step", mean_of("seconds_per_step", 3))])


def main(argv: list[str] | None = None) -> None:
    parser = sweep_parser(__doc__.split("\n")[0], SEGNET_UPSAMPLINGS, DEFAULT_OUT)
    parser.add_argument("--steps", type=int, default=SEGNET_SHAPES.steps,
                        help=f"training steps per run (default: the chapter's {SEGNET_SHAPES.steps})")
    args = parse_sweep(parser, argv)
    recipe = dataclasses.replace(SEGNET_SHAPES, steps=args.steps)  # checks the value
    rows = run_sweep(functools.partial(run, recipe=recipe), args, list(SEGNET_UPSAMPLINGS), FIELDS,
                     "benchmarks/segnet_decoders.py", argv, seed_major=True)
    print(summary(rows))


if __name__ == "__main__":
    main()
