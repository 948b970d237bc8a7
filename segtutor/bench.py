"""Measuring models: parameters, FLOPs, activation memory and time, each one way.

The book and ``benchmarks/`` measure with these functions only:

* :func:`count_parameters` -- the number of weights;
* :func:`count_flops` -- floating-point operations *counted* from the operators' shapes by
  PyTorch's ``FlopCounterMode`` (a multiply--add counts as two); a count, not a measurement;
* :func:`saved_for_backward_bytes` -- the bytes of the tensors autograd keeps between the
  forward and the backward pass (the activation memory of training), exact and independent
  of the allocator;
* :func:`median_seconds` -- wall-clock time, always the same statistic: the *median* of
  repeated calls after a warm-up, with CUDA (and MPS) synchronised around every call;
* :func:`measure_training_step` -- all of the above for one forward and backward pass, plus
  the CUDA allocator's peak on a GPU (Chapter 4 prints it).

:func:`results_header` writes the comment lines (machine, date, command) that start every
results file of ``benchmarks/results/``; :func:`machine_name` names the CPU in them;
:func:`write_results` writes such a file. The benchmark scripts that repeat a training
recipe over seeds share :func:`sweep_parser` (their command line), :func:`run_sweep` (the
runs, merged, sorted and written), :func:`mean_and_range` (how a spread over seeds is
written) and :func:`seed_table` with :func:`mean_of` (their Markdown summary).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ._checks import (
    check_bool,
    check_callable,
    check_non_negative_int,
    check_number,
    check_positive_int,
    describe,
)

__all__ = [
    "compare_seeds",
    "count_flops",
    "count_parameters",
    "machine_name",
    "mean_and_range",
    "mean_of",
    "measure_training_step",
    "median_seconds",
    "merge_results",
    "parse_sweep",
    "results_header",
    "run_sweep",
    "saved_for_backward_bytes",
    "seed_table",
    "sweep_parser",
    "write_results",
]


def _synchronize() -> None:
    """Wait for queued GPU work, so that a timer stops when the work is done."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    if torch.backends.mps.is_available():
        torch.mps.synchronize()


def median_seconds(fn: Callable[[], Any], *, min_run_time: float = 0.2, repeats: int = 1,
                   warmup: int = 1) -> float:
    """Median wall-clock seconds of one call ``fn()``, after ``warmup`` untimed calls.

    Each call is timed on its own (``time.perf_counter``, with CUDA and MPS synchronised
    before and after it, so queued GPU work is counted), on the calling thread with the
    current ``torch.get_num_threads()``. Calls are repeated until at least ``repeats`` have
    been timed *and* they took ``min_run_time`` seconds together, so one slow outlier does
    not decide the figure. The first call of a step pays for allocations and kernel
    selection; the warm-up keeps it out.

    Args:
        fn: the work to time, called without arguments.
        min_run_time: seconds of timed calls at least (``0``: exactly ``repeats`` calls).
        repeats: timed calls at least, a positive int.
        warmup: untimed calls first, a non-negative int.

    Raises:
        TypeError: ``fn`` is not callable, or a number of the wrong type.
        ValueError: ``min_run_time`` is negative, ``repeats < 1`` or ``warmup < 0``.
    """
    check_callable(fn, "fn")
    check_number(min_run_time, "min_run_time", minimum=0)
    check_positive_int(repeats, "repeats")
    check_non_negative_int(warmup, "warmup")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_run_time:
        _synchronize()
        start = time.perf_counter()
        fn()
        _synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    _check_module(model)
    check_bool(trainable_only, "trainable_only")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Floating-point operations of one call ``fn(*args, **kwargs)``, *counted*, not measured.

    ``torch.utils.flop_counter.FlopCounterMode`` adds up a formula per operator from the
    shapes of its arguments: a convolution of ``C_in`` to ``C_out`` channels with a ``k x k``
    kernel costs ``2 * C_in * C_out * k**2 * H_out * W_out`` per image (a multiply--add
    counts as two); its backward pass costs the same again for the weights' gradient and
    once more for the input's, when the input needs one. Only matrix products, convolutions
    and attention are counted; element-wise operations (ReLU, batch norm, bias, pooling,
    interpolation) count as zero. The count says nothing about time: memory traffic and
    small, inefficient layers decide that (time it with :func:`median_seconds`).

    ``count_flops(model, x)`` counts one forward pass; pass a function that also calls
    ``backward()`` to count a training step.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    check_callable(fn, "fn")
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def saved_for_backward_bytes(model: nn.Module, *inputs: Any) -> int:
    """Bytes of the tensors autograd saves for the backward pass during ``model(*inputs)``.

    The forward pass runs (with gradients enabled) under
    ``torch.autograd.graph.saved_tensors_hooks``, which sees every tensor an operator keeps
    for its backward: e.g. a convolution keeps its input, a ReLU its output. Each storage
    counts once (``x * x`` keeps ``x`` twice, but it is one block of memory), and the
    model's parameters are left out -- they are saved too, but they are in memory anyway;
    what remains is the activation memory that grows with the batch and the image size.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.
    """
    _check_module(model)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = model(*inputs)
    del output  # frees the graph and with it the saved tensors
    return sum(storages.values())


def measure_training_step(model: nn.Module, *inputs: Tensor,
                          loss: Callable[[Any], Tensor] | None = None, repeats: int = 5,
                          min_run_time: float = 0.2) -> dict[str, float]:
    """FLOPs, activation memory and time of one training step ``loss(model(*inputs)).backward()``.

    Args:
        model: the network; it runs in the mode it is in (``train()`` for a training step).
            Its gradients are cleared afterwards.
        *inputs: the model's inputs (at least one tensor).
        loss: maps the model's output to a scalar; ``None`` uses ``output.square().mean()``,
            which needs no target and costs next to nothing.
        repeats, min_run_time: passed to :func:`median_seconds` (one warm-up step first).

    Returns:
        ``{"GFLOP": ..., "saved MiB": ..., "ms": ...}``: :func:`count_flops` of the step in
        units of 10**9, :func:`saved_for_backward_bytes` of the forward pass in MiB, and the
        :func:`median_seconds` of the step in milliseconds; on CUDA also
        ``"CUDA peak MiB"``, the allocator's peak (``torch.cuda.max_memory_allocated``)
        during the timed steps, which adds gradients and workspace to the activations.

    Raises:
        TypeError: ``model`` is not a module, an input not a tensor, ``loss`` not callable.
        ValueError: no inputs, or a bad ``repeats`` / ``min_run_time``.
    """
    _check_module(model)
    if not inputs:
        raise ValueError("inputs must hold at least one tensor for model(*inputs), got none")
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"inputs[{i}] must be a torch.Tensor, got {describe(tensor)} "
                            f"({type(tensor).__name__})")
    if loss is not None:
        check_callable(loss, "loss")
    check_positive_int(repeats, "repeats")
    check_number(min_run_time, "min_run_time", minimum=0)

    def step() -> None:
        output = model(*inputs)
        (output.square().mean() if loss is None else loss(output)).backward()

    flops = count_flops(step)
    saved = saved_for_backward_bytes(model, *inputs)
    cuda = inputs[0].device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(inputs[0].device)
    seconds = median_seconds(step, repeats=repeats, min_run_time=min_run_time)
    model.zero_grad(set_to_none=True)
    result = {"GFLOP": flops / 1e9, "saved MiB": saved / 2**20, "ms": 1000 * seconds}
    if cuda:
        result["CUDA peak MiB"] = torch.cuda.max_memory_allocated(inputs[0].device) / 2**20
    return result


def machine_name() -> str:
    """The CPU's model name and architecture (from ``/proc/cpuinfo`` on Linux), else ``platform``'s."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {platform.machine()}"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def results_header(command: str) -> str:
    """The comment lines that start a results file: machine, threads, torch, date, ``command``.

    Example::

        # machine: AMD EPYC, x86_64 (1 of 2 cores), torch 2.14.1
        # date: 2026-12-02
        # command: python benchmarks/global_context.py --seeds 0 1 2
    """
    if not isinstance(command, str):
        raise TypeError(f"command must be a str, got {describe(command)} "
                        f"({type(command).__name__})")
    return (f"# machine: {machine_name()} ({torch.get_num_threads()} of {os.cpu_count()} "
            f"cores), torch {torch.__version__}\n"
            f"# date: {datetime.date.today().isoformat()}\n"
            f"# command: {command}\n")


def write_results(out: str | Path, rows: Sequence[Mapping[str, object]], fields: Sequence[str],
                  command: str, *, comments: Sequence[str] = ()) -> None:
    """Write ``rows`` as CSV under :func:`results_header` (and ``comments``) to ``out``.

    Args:
        out: the file (its folder is created), or ``"-"`` to print the text instead.
        rows: one mapping per row, with the keys ``fields``.
        fields: the CSV's columns, in order.
        command: the command that produced the rows, for the header.
        comments: further comment lines (without the ``#``), after the header.
    """
    text = io.StringIO()
    text.write(results_header(command))
    text.writelines(f"# {line}\n" for line in comments)
    writer = csv.DictWriter(text, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    if out == "-":
        print(text.getvalue())
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text.getvalue())
        print(f"wrote {out}")


def mean_and_range(values: Sequence[float], digits: int = 3) -> str:
    """``"mean (min-max)"`` of ``values`` (e.g. one score over seeds) to ``digits`` decimals.

    Example: ``mean_and_range([0.5, 0.7, 0.6])`` is ``"0.600 (0.500-0.700)"``.

    Raises:
        ValueError: ``values`` is empty.
    """
    check_non_negative_int(digits, "digits")
    numbers = [float(value) for value in values]
    if not numbers:
        raise ValueError("mean_and_range needs at least one value, got none")
    return (f"{statistics.mean(numbers):.{digits}f} "
            f"({min(numbers):.{digits}f}-{max(numbers):.{digits}f})")


def compare_seeds(a: Sequence[float], b: Sequence[float], names: tuple[str, str] = ("a", "b"),
                  *, higher_is_better: bool = True, digits: int = 3) -> str:
    """How one score of two variants compares over seeds: the difference of the means and
    whether the seeds' ranges separate -- the book's rule for calling a gain real.

    Example: ``compare_seeds([0.5, 0.6], [0.3, 0.4], ("indices", "bilinear"))`` is
    ``"indices - bilinear: mean +0.200 (2 and 2 seeds); the ranges separate, indices is
    better"``; with overlapping ranges it ends ``"the ranges overlap"``.

    Args:
        a, b: the score of each seed of the two variants.
        names: the two variants' names, for the text.
        higher_is_better: False for an error (lower is better).
        digits: decimals of the difference.

    Raises:
        ValueError: ``a`` or ``b`` is empty.
    """
    check_bool(higher_is_better, "higher_is_better")
    check_non_negative_int(digits, "digits")
    a, b = [float(v) for v in a], [float(v) for v in b]
    if not a or not b:
        raise ValueError(f"compare_seeds needs at least one value on each side, got {len(a)} "
                         f"and {len(b)}")
    gap = statistics.mean(a) - statistics.mean(b)
    text = f"{names[0]} - {names[1]}: mean {gap:+.{digits}f} ({len(a)} and {len(b)} seeds); "
    if min(a) > max(b) or max(a) < min(b):
        a_higher = min(a) > max(b)
        return text + (f"the ranges separate, "
                       f"{names[0] if a_higher == higher_is_better else names[1]} is better")
    return text + "the ranges overlap"


def seed_table(rows: Sequence[Mapping[str, object]], order: Sequence[str],
               columns: Sequence[tuple[str, str | Callable[[list[Mapping[str, object]]], str]]],
               *, key: str = "variant", label: str = "network", digits: int = 3) -> str:
    """A Markdown table with one line per value of ``row[key]`` (in ``order``; absent ones
    left out): the label, the number of runs, then ``columns``.

    Args:
        rows: one mapping per run (e.g. read back from a results CSV: values may be strings).
        order: the values of ``key`` in the order of the table's lines.
        columns: ``(header, what)`` pairs; ``what`` a field name (written by
            :func:`mean_and_range` over the runs, left-aligned) or a function of the list of
            runs returning the cell (right-aligned, e.g. a mean time or a parameter count).
        key: the field that names a run's variant.
        label: the header of the first column.
        digits: decimals of :func:`mean_and_range`.
    """
    header = [label, "runs"] + [name for name, _ in columns]
    rule = ["---", "---:"] + ["---" if isinstance(what, str) else "---:" for _, what in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    for variant in order:
        runs = [row for row in rows if row[key] == variant]
        if not runs:
            continue
        cells = [mean_and_range([float(run[what]) for run in runs], digits)  # type: ignore[arg-type]
                 if isinstance(what, str) else what(runs) for _, what in columns]
        lines.append("| " + " | ".join([str(variant), str(len(runs)), *cells]) + " |")
    return "\n".join(lines)


def mean_of(field: str, digits: int = 3) -> Callable[[list[Mapping[str, object]]], str]:
    """A :func:`seed_table` column: the mean of ``field`` over the runs, to ``digits`` decimals."""
    check_non_negative_int(digits, "digits")

    def column(runs: list[Mapping[str, object]]) -> str:
        return f"{statistics.mean(float(str(run[field])) for run in runs):.{digits}f}"

    return column


def sweep_parser(description: str, variants: Sequence[str], default_out: str | Path, *,
                 option: str = "--variants") -> argparse.ArgumentParser:
    """The command line of a benchmark that repeats a recipe per variant and seed.

    ``option`` (default ``--variants``: which of ``variants``, all by default), ``--seeds``
    (default 0 1 2), ``--threads`` (torch threads, default 1), ``--out`` (the results CSV,
    ``default_out``; ``-`` prints it) and ``--merge`` (results files of parallel runs, for
    :func:`merge_results`). Parse with :func:`parse_sweep`.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(option, nargs="+", choices=list(variants), default=list(variants),
                        help="which to run (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="seeds (default 0 1 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default=str(default_out), help="CSV path, or - for stdout")
    parser.add_argument("--merge", nargs="*", default=[],
                        help="results files of runs made in parallel, read at the end and added")
    return parser


def merge_results(paths: Sequence[str | Path]) -> tuple[list[dict[str, str]], list[str]]:
    """Read the rows of results files written by :func:`write_results` (e.g. by sweeps run in
    parallel), and a comment line naming each file's command.

    Returns:
        ``(rows, comments)``: the CSV rows (values as strings) of all files in order, and
        ``"merged, from the command: ..."`` per file, for :func:`write_results`' ``comments``.
    """
    rows: list[dict[str, str]] = []
    comments: list[str] = []
    for path in paths:
        lines = Path(path).read_text().splitlines()
        comments += [line.replace("# command:", "merged, from the command:")
                     for line in lines if line.startswith("# command:")]
        rows.extend(csv.DictReader(line for line in lines if line and not line.startswith("#")))
    return rows, comments


def run_sweep(run: Callable[[str, int], Mapping[str, object]], args: argparse.Namespace,
              order: Sequence[str], fields: Sequence[str], script: str,
              argv: Sequence[str] | None = None, *, seed_major: bool = False,
              comments: Callable[[], Sequence[str]] = tuple) -> list[dict[str, object]]:
    """Run a seed sweep parsed by :func:`parse_sweep` and write its results file.

    Calls ``run(variant, seed)`` for every one of ``args.variants`` and ``args.seeds``
    (variant by variant, or seed by seed with ``seed_major``, so that an interrupted sweep
    still compares the variants), printing each row; then adds the rows of ``args.merge``
    (read after the runs, so that parallel ones have finished), sorts them by the position of
    their variant in ``order`` and by seed, and writes them with :func:`write_results` to
    ``args.out`` under the command ``python <script> <argv>``, followed by the merged files'
    commands and ``comments()`` (called at the end, e.g. for the load average).

    Returns:
        the sorted rows.
    """
    pairs = ([(variant, seed) for seed in args.seeds for variant in args.variants] if seed_major
             else [(variant, seed) for variant in args.variants for seed in args.seeds])
    rows: list[dict[str, object]] = []
    for variant, seed in pairs:
        rows.append(dict(run(variant, seed)))
        print(", ".join(f"{key}={value}" for key, value in rows[-1].items()), flush=True)
    merged, merged_comments = merge_results(args.merge)
    rows.extend(merged)
    rows.sort(key=lambda row: (list(order).index(str(row["variant"])), int(str(row["seed"]))))
    command = f"python {script} " + shlex.join(sys.argv[1:] if argv is None else argv)
    write_results(args.out, rows, fields, command, comments=[*merged_comments, *comments()])
    return rows


def parse_sweep(parser: argparse.ArgumentParser,
                argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` with a :func:`sweep_parser`; refuse negative seeds and ``--threads`` < 1
    (argparse's usage error, exit 2); set torch's threads."""
    args = parser.parse_args(argv)
    if args.threads < 1 or any(seed < 0 for seed in args.seeds):
        parser.error(f"need --threads >= 1 and seeds >= 0, got {args.threads} and {args.seeds}")
    torch.set_num_threads(args.threads)
    return args


def _check_module(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {describe(model)} "
                        f"({type(model).__name__})")
