"""Chapter 12's comparison: every semantic network of the book on one benchmark, over seeds.

Run from the repository root::

    python benchmarks/compare_all.py                       # 8 networks x 3 seeds, CPU
    python benchmarks/compare_all.py --networks unet segnet --seeds 0

Every run is ``segtutor.recipes.COMPARISON`` -- the recipe Chapter 12 re-runs in part --
with one network of ``segtutor.recipes.COMPARISON_NETWORKS`` and one seed: the network
trained from scratch on ``Shapes`` (64-pixel images, 240 steps of 8, AdamW with a one-cycle
schedule), the same data and steps for all. Each row holds the held-out pixel accuracy,
mIoU, trimap IoU (2 px band) and Boundary IoU, the seconds per training step, and the
network's costs measured by ``ComparisonRecipe.costs``: parameters, multiply-adds of one
forward pass (counted by ``FlopCounterMode``, in 10**9), the median CPU latency of one
forward pass and the activation memory of training one image (MiB), at 256 and 512
pixels. The CSV (``benchmarks/results/compare_all.csv`` by default) starts with comment
lines naming the machine, the date and the command; beside it goes the accuracy-versus-cost
plot (the same path ending in ``.png``: held-out mIoU against the CPU latency and the
activation memory at 256 pixels, as in Chapter 12). ``--out -`` prints the CSV only;
``--merge`` adds the rows of runs made in parallel (e.g. the ResNet networks in a second
process).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a file, not a window
import matplotlib.pyplot as plt  # noqa: E402

from segtutor.bench import (  # noqa: E402
    count_parameters,
    mean_of,
    parse_sweep,
    run_sweep,
    seed_table,
    sweep_parser,
)
from segtutor.recipes import COMPARISON, COMPARISON_LABELS, COMPARISON_NETWORKS  # noqa: E402
from segtutor.viz import plot_tradeoff  # noqa: E402

DEFAULT_OUT = Path(__file__).parent / "results" / "compare_all.csv"
SIZES = COMPARISON.cost_sizes
FIELDS = ("variant", "seed", "parameters", *(f"gmacs_{s}" for s in SIZES),
          *(f"latency_ms_{s}" for s in SIZES), *(f"activation_mib_{s}" for s in SIZES),
          "seconds_per_step", "pixel_accuracy", "miou", "trimap_iou", "boundary_iou")


def run(name: str, seed: int) -> dict[str, object]:
    """Train and evaluate network ``name`` of ``COMPARISON`` with ``seed``; measure its costs."""
    images, masks = COMPARISON.val_tensors()
    net, history, seconds = COMPARISON.train(name, seed=seed, device="cpu")
    scores = COMPARISON.evaluate(net, images, masks)
    costs = COMPARISON.costs(name)
    assert costs["parameters"] == count_parameters(net)
    return {"variant": name, "seed": seed, "parameters": costs.pop("parameters"),
            **{key: round(value, 3) for key, value in costs.items()},
            "seconds_per_step": round(seconds / history.step[-1], 4),
            **{key: round(value, 4) for key, value in scores.items()}}


def summary(rows: list[dict[str, object]]) -> str:
    """Markdown: mean (min-max) of each score per network, and its mean costs."""
    return seed_table(rows, list(COMPARISON_NETWORKS), [
        ("mIoU", "miou"), ("Boundary IoU", "boundary_iou"),
        ("parameters", mean_of("parameters", 0)), ("GMACs@256", mean_of("gmacs_256", 2)),
        ("ms@256", mean_of("latency_ms_256", 0)), ("s/step", mean_of("seconds_per_step", 3))])


#: The two panels of the accuracy-versus-cost plot: the cost field and its axis label.
PANELS = (("latency_ms_256", "CPU latency of one 256 x 256 image (ms, log scale)"),
          ("activation_mib_256", "activation memory of training, per 256 x 256 image (MiB, log scale)"))


def plot(rows: list[dict[str, object]]) -> plt.Figure:
    """Chapter 12's Figure 12.1: held-out mIoU against each cost of :data:`PANELS`."""
    figure, axes = plt.subplots(1, len(PANELS), figsize=(11, 4.4))
    for ax, (cost, label) in zip(axes, PANELS, strict=True):
        plot_tradeoff(rows, cost=cost, score="miou", labels=COMPARISON_LABELS, ax=ax)
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel("held-out mIoU (mean; bars: min-max over seeds)", fontsize=9)
    figure.suptitle("Accuracy against cost: every network, the same training steps on Shapes "
                    "(benchmarks/compare_all.py)", fontsize=10)
    figure.tight_layout()
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = sweep_parser(__doc__.split("\n")[0], list(COMPARISON_NETWORKS), DEFAULT_OUT,
                          option="--networks")
    args = parse_sweep(parser, argv)
    args.variants = args.networks
    rows = run_sweep(run, args, list(COMPARISON_NETWORKS), FIELDS, "benchmarks/compare_all.py",
                     argv, seed_major=True)
    print(summary(rows))
    if args.out != "-":
        picture = Path(args.out).with_suffix(".png")
        plot(rows).savefig(picture, dpi=110)
        print(f"wrote {picture}")


if __name__ == "__main__":
    main()
