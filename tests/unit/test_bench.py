"""segtutor.bench against independent references: hand-counted bytes, the convolution's FLOP
formula, sleeps of known length, and the refusal of bad arguments."""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from torch import nn

from segtutor import bench

FLOAT = 4  # bytes of one float32


# -- saved_for_backward_bytes -----------------------------------------------------------


def test_saved_bytes_of_a_conv_and_a_relu_counted_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
    for requires_grad in (True, False):
        x = torch.randn(2, 3, 8, 8, requires_grad=requires_grad)
        # the convolution keeps its input (for the weights' gradient) and its weight (a
        # parameter: not counted); the ReLU keeps its output, 2 x 5 x 8 x 8
        expected = 2 * 3 * 8 * 8 * FLOAT + 2 * 5 * 8 * 8 * FLOAT
        assert bench.saved_for_backward_bytes(model, x) == expected


def test_saved_bytes_leave_out_parameters_and_their_views():
    # Linear keeps its input and weight.t(), a view of a parameter's storage
    x = torch.randn(7, 4)
    assert bench.saved_for_backward_bytes(nn.Linear(4, 3), x) == 7 * 4 * FLOAT


class Cube(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x) * x


def test_saved_bytes_count_a_shared_storage_once():
    x = torch.randn(3, 4, requires_grad=True)
    # x * x keeps x twice (one storage); (x * x) * x keeps the square and x again
    assert bench.saved_for_backward_bytes(Cube(), x) == 2 * x.numel() * FLOAT


def test_saved_bytes_with_several_inputs_and_under_no_grad():
    class Product(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a * b

    a, b = torch.randn(5, requires_grad=True), torch.randn(6, 5, requires_grad=True)
    with torch.no_grad():  # the measurement turns gradients on for its forward pass
        assert bench.saved_for_backward_bytes(Product(), a, b) == (5 + 30) * FLOAT


# -- count_flops ----------------------------------------------------------------------


@pytest.mark.parametrize(("size", "kernel", "stride", "padding"),
                         [((12, 10), 3, 1, 1), ((11, 9), 3, 2, 0), ((8, 8), 1, 1, 0)])
def test_conv_flops_follow_the_formula(size, kernel, stride, padding):
    c_in, c_out, batch = 3, 5, 2
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
    x = torch.randn(batch, c_in, *size)
    h_out, w_out = ((s + 2 * padding - kernel) // stride + 1 for s in size)
    forward = 2 * c_in * c_out * kernel**2 * h_out * w_out * batch
    assert conv(x).shape[-2:] == (h_out, w_out)
    assert bench.count_flops(conv, x) == forward

    def step() -> None:
        conv(x).sum().backward()

    assert bench.count_flops(step) == 2 * forward  # + the weights' gradient
    x.requires_grad_(True)
    assert bench.count_flops(step) == 3 * forward  # + the input's gradient


def test_linear_flops_and_elementwise_operations_count_zero():
    x = torch.randn(6, 4)
    assert bench.count_flops(nn.Linear(4, 3), x) == 2 * 6 * 4 * 3
    assert bench.count_flops(torch.relu, x) == 0
    assert bench.count_flops(lambda t, s: t * s, x, s=2.0) == 0  # keyword arguments pass on


# -- median_seconds -------------------------------------------------------------------


def sleeper(durations: list[float]):
    """A function that sleeps durations[0], then durations[1], ..., recording its calls."""
    calls: list[float] = []

    def fn() -> None:
        seconds = durations[min(len(calls), len(durations) - 1)]
        calls.append(seconds)
        time.sleep(seconds)

    return fn, calls


def test_median_seconds_is_the_median_after_the_warm_up():
    # the warm-up sleeps 0.3 s and one timed call 0.2 s: neither may decide the figure
    fn, calls = sleeper([0.3, 0.01, 0.2, 0.01, 0.01, 0.01])
    seconds = bench.median_seconds(fn, repeats=5, min_run_time=0)
    assert len(calls) == 6
    assert 0.01 <= seconds < 0.15  # a lower bound only: the machine may be busy


def test_median_seconds_repeats_until_min_run_time():
    fn, calls = sleeper([0.01])
    seconds = bench.median_seconds(fn, min_run_time=0.05, warmup=2)
    assert len(calls) >= 2 + 5 and 0.01 <= seconds < 1.0
    fn, calls = sleeper([0.02])
    bench.median_seconds(fn, repeats=3, min_run_time=0, warmup=0)
    assert len(calls) == 3


def test_median_seconds_keeps_the_thread_count():
    seen: list[int] = []
    bench.median_seconds(lambda: seen.append(torch.get_num_threads()), repeats=2,
                         min_run_time=0)
    assert set(seen) == {torch.get_num_threads()}


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"fn": 3}, TypeError, "fn must be callable"),
    ({"min_run_time": -1}, ValueError, "min_run_time must be a finite number >= 0"),
    ({"min_run_time": "1"}, TypeError, "min_run_time must be a finite number"),
    ({"repeats": 0}, ValueError, "repeats must be a positive int, got 0"),
    ({"repeats": 2.0}, TypeError, "repeats must be a positive int"),
    ({"repeats": True}, TypeError, "repeats must be a positive int"),
    ({"warmup": -1}, ValueError, "warmup must be a non-negative int, got -1"),
])
def test_median_seconds_refuses_bad_arguments(kwargs, error, message):
    arguments = {"fn": lambda: None, **kwargs}
    fn = arguments.pop("fn")
    with pytest.raises(error, match=message):
        bench.median_seconds(fn, **arguments)


# -- count_parameters and measure_training_step ---------------------------------------


def test_count_parameters_refuses_a_non_module():
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got \[1, 2\] \(list\)"):
        bench.count_parameters([1, 2])


def test_measure_training_step_combines_the_measurements():
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
    x = torch.randn(2, 3, 8, 8)
    result = bench.measure_training_step(model, x, repeats=2, min_run_time=0)
    assert list(result) == ["GFLOP", "saved MiB", "ms"]  # no "CUDA peak MiB" on the CPU
    forward = 2 * 3 * 5 * 9 * 8 * 8 * 2
    assert result["GFLOP"] == pytest.approx(2 * forward / 1e9)  # forward + weights' gradient
    assert result["saved MiB"] == pytest.approx((2 * 3 + 2 * 5) * 8 * 8 * FLOAT / 2**20)
    assert result["ms"] > 0
    assert all(p.grad is None for p in model.parameters())  # cleared afterwards


def test_measure_training_step_takes_a_loss():
    model = nn.Linear(4, 3)
    losses: list[float] = []

    def loss(output: torch.Tensor) -> torch.Tensor:
        value = output.sum()
        losses.append(value.item())
        return value

    bench.measure_training_step(model, torch.randn(2, 4), loss=loss, repeats=1, min_run_time=0)
    assert len(losses) == 1 + 1 + 1  # the FLOP count, the warm-up, one timed step


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    (("model", torch.zeros(1)), {}, TypeError, "model must be a torch.nn.Module"),
    ((nn.ReLU(),), {}, ValueError, "inputs must hold at least one tensor"),
    ((nn.ReLU(), torch.zeros(1), [1.0]), {}, TypeError, r"inputs\[1\] must be a torch.Tensor"),
    ((nn.ReLU(), torch.zeros(1)), {"loss": "mse"}, TypeError, "loss must be callable"),
    ((nn.ReLU(), torch.zeros(1)), {"repeats": 0}, ValueError, "repeats must be a positive int"),
    ((nn.ReLU(), torch.zeros(1)), {"min_run_time": -0.5}, ValueError, "min_run_time must be"),
])
def test_measure_training_step_refuses_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        bench.measure_training_step(*args, **kwargs)


def test_saved_bytes_and_flops_refuse_bad_arguments():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        bench.saved_for_backward_bytes(torch.relu, torch.zeros(1))
    with pytest.raises(TypeError, match="fn must be callable"):
        bench.count_flops(None)


def test_results_header_names_machine_date_and_command():
    import datetime
    import os

    header = bench.results_header("python benchmarks/x.py --seeds 0")
    lines = header.splitlines()
    assert len(lines) == 3 and header.endswith("\n")
    assert lines[0] == (f"# machine: {bench.machine_name()} ({torch.get_num_threads()} of "
                        f"{os.cpu_count()} cores), torch {torch.__version__}")
    assert lines[1] == f"# date: {datetime.date.today().isoformat()}"
    assert lines[2] == "# command: python benchmarks/x.py --seeds 0"
    assert bench.machine_name()  # never empty
    with pytest.raises(TypeError, match=r"command must be a str, got \['python'\]"):
        bench.results_header(["python"])


def test_write_results_writes_the_header_comments_and_rows(tmp_path, capsys):
    import csv

    rows = [{"variant": "a", "miou": 0.5}, {"variant": "b", "miou": 0.25}]
    out = tmp_path / "new" / "r.csv"
    bench.write_results(out, rows, ("variant", "miou"), "python x.py", comments=["merged: y"])
    lines = out.read_text().splitlines()
    assert lines[:3] == bench.results_header("python x.py").splitlines()
    assert lines[3] == "# merged: y"
    assert list(csv.DictReader(lines[4:])) == [{"variant": "a", "miou": "0.5"},
                                               {"variant": "b", "miou": "0.25"}]
    assert capsys.readouterr().out == f"wrote {out}\n"
    bench.write_results("-", rows, ("variant", "miou"), "python x.py")
    printed = capsys.readouterr().out
    # the csv module's own line ends, as the benchmarks always wrote them
    assert printed.startswith("# machine: ") and "variant,miou\r\na,0.5\r\nb,0.25\r\n" in printed
    assert not (tmp_path / "-").exists()


def test_mean_and_range_is_statistics_mean_min_and_max():
    values = [0.5, 0.7, 0.6, 0.65]
    assert bench.mean_and_range(values) == (
        f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})")
    assert bench.mean_and_range(["0.25", 0.75], digits=1) == "0.5 (0.2-0.8)"  # CSV strings
    with pytest.raises(ValueError, match="at least one value"):
        bench.mean_and_range([])
    with pytest.raises(ValueError, match="digits"):
        bench.mean_and_range([1.0], digits=-1)


def test_seed_table_groups_runs_by_variant_in_the_given_order():
    rows = [{"variant": "b", "seed": s, "miou": 0.1 * (s + 1), "seconds": 10 + s} for s in range(3)]
    rows += [{"variant": "a", "seed": 0, "miou": "0.9", "seconds": "5"}]  # read back from a CSV
    table = bench.seed_table(rows, ["a", "b", "c"], [
        ("mIoU", "miou"),
        ("s", lambda runs: f"{statistics.mean(float(r['seconds']) for r in runs):.0f}")])
    assert table.splitlines() == [
        "| network | runs | mIoU | s |",
        "|---|---:|---|---:|",
        "| a | 1 | 0.900 (0.900-0.900) | 5 |",
        f"| b | 3 | {bench.mean_and_range([0.1, 0.2, 0.3])} | 11 |",
    ]  # "c" has no runs: no line


def test_sweep_parser_defaults_and_refusals(capsys):
    parser = bench.sweep_parser("demo", ["x", "y"], "out.csv")
    threads = torch.get_num_threads()
    try:
        args = bench.parse_sweep(parser, [])
        assert (args.variants, args.seeds, args.threads, args.out) == (["x", "y"], [0, 1, 2], 1,
                                                                      "out.csv")
        assert torch.get_num_threads() == 1
        assert bench.parse_sweep(parser, ["--variants", "y", "--seeds", "4"]).variants == ["y"]
        for argv in (["--seeds", "-1"], ["--threads", "0"], ["--variants", "z"]):
            with pytest.raises(SystemExit) as stop:
                bench.parse_sweep(parser, argv)
            assert stop.value.code == 2
        assert "seeds >= 0" in capsys.readouterr().err
        recipes = bench.sweep_parser("demo", ["r"], "o.csv", option="--recipes")
        assert bench.parse_sweep(recipes, []).recipes == ["r"]
    finally:
        torch.set_num_threads(threads)


def test_merge_results_reads_back_what_write_results_wrote(tmp_path, capsys):
    rows = [{"variant": "a", "seed": 0, "miou": 0.5}, {"variant": "b", "seed": 1, "miou": 0.25}]
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    bench.write_results(first, rows[:1], ("variant", "seed", "miou"), "python one.py --seeds 0")
    bench.write_results(second, rows[1:], ("variant", "seed", "miou"), "python two.py --seeds 1",
                        comments=["load 1.0"])
    merged, comments = bench.merge_results([first, second])
    assert merged == [{key: str(value) for key, value in row.items()} for row in rows]
    assert comments == ["merged, from the command: python one.py --seeds 0",
                        "merged, from the command: python two.py --seeds 1"]
    assert bench.merge_results([]) == ([], [])
    threads = torch.get_num_threads()
    try:
        assert bench.parse_sweep(bench.sweep_parser("d", ["a"], "o.csv"),
                                 ["--merge", str(first)]).merge == [str(first)]
    finally:
        torch.set_num_threads(threads)


def test_mean_of_is_a_seed_table_column_of_means():
    runs = [{"seconds": "1.0"}, {"seconds": 2.5}]
    assert bench.mean_of("seconds", 2)(runs) == f"{statistics.mean([1.0, 2.5]):.2f}"
    with pytest.raises(ValueError, match="digits"):
        bench.mean_of("seconds", -1)


@pytest.mark.parametrize("seed_major", [False, True])
def test_run_sweep_runs_merges_sorts_and_writes(tmp_path, capsys, seed_major):
    threads = torch.get_num_threads()
    try:
        earlier = tmp_path / "earlier.csv"
        bench.write_results(earlier, [{"variant": "b", "seed": 5, "score": 0.5}],
                            ("variant", "seed", "score"), "python sweep.py --seeds 5")
        out = tmp_path / "out.csv"
        argv = ["--seeds", "1", "0", "--out", str(out), "--merge", str(earlier)]
        args = bench.parse_sweep(bench.sweep_parser("d", ["a", "b"], "o.csv"), argv)
        calls = []

        def run(variant, seed):
            calls.append((variant, seed))
            return {"variant": variant, "seed": seed, "score": seed / 10}

        rows = bench.run_sweep(run, args, ["a", "b"], ("variant", "seed", "score"),
                               "benchmarks/sweep.py", argv, seed_major=seed_major,
                               comments=lambda: ["load 1.0"])
    finally:
        torch.set_num_threads(threads)
    expected_calls = ([("a", 1), ("b", 1), ("a", 0), ("b", 0)] if seed_major
                      else [("a", 1), ("a", 0), ("b", 1), ("b", 0)])
    assert calls == expected_calls
    assert [(r["variant"], int(r["seed"])) for r in rows] == [("a", 0), ("a", 1), ("b", 0),
                                                              ("b", 1), ("b", 5)]
    text = out.read_text()
    assert "# command: python benchmarks/sweep.py --seeds 1 0" in text
    assert "# merged, from the command: python sweep.py --seeds 5" in text
    assert "# load 1.0" in text and text.rstrip().endswith("b,5,0.5")
    assert "variant=a, seed=1, score=0.1" in capsys.readouterr().out


def test_compare_seeds_calls_a_gain_real_only_where_the_ranges_separate():
    from segtutor.bench import compare_seeds

    assert compare_seeds([0.5, 0.6], [0.3, 0.4], ("indices", "bilinear")) == (
        "indices - bilinear: mean +0.200 (2 and 2 seeds); the ranges separate, indices is better")
    assert compare_seeds([0.3, 0.5], [0.4, 0.6], ("x", "y")).endswith(
        "mean -0.100 (2 and 2 seeds); the ranges overlap")
    # an error: the lower side wins
    assert compare_seeds([0.02, 0.03], [0.2, 0.3], ("weights", "ce"), higher_is_better=False,
                         digits=2).endswith("mean -0.23 (2 and 2 seeds); the ranges separate, "
                                            "weights is better")
    assert compare_seeds(["0.5"], [0.25], digits=1) == (
        "a - b: mean +0.2 (1 and 1 seeds); the ranges separate, a is better")
    with pytest.raises(ValueError, match="at least one value on each side, got 0 and 1"):
        compare_seeds([], [0.1])
    with pytest.raises(TypeError, match="higher_is_better"):
        compare_seeds([0.1], [0.2], higher_is_better=1)
