"""segtutor.viz.show_source: the code shown, its caption (file and lines) and its link."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest
import torch

from segtutor import bench
from segtutor.models.unet import UNet
from segtutor.viz import source
from segtutor.viz.source import SOURCE_BRANCH, SOURCE_URL, Source, show_source

ROOT = Path(__file__).resolve().parents[2]


def expected_lines(obj) -> tuple[list[str], int]:
    lines, start = inspect.getsourcelines(obj)
    return lines, max(start, 1)


@pytest.mark.parametrize("obj", [bench.count_parameters, UNet, UNet.forward, source],
                         ids=["function", "class", "method", "module"])
def test_whole_object_caption_and_link_match_inspect(obj):
    lines, start = expected_lines(obj)
    end = start + len(lines) - 1
    shown = show_source(obj)
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT).as_posix()
    assert isinstance(shown, Source)
    assert (shown.path, shown.first_line, shown.last_line) == (path, start, end)
    assert shown.caption == f"{path}, lines {start}\u2013{end}"
    assert shown.url == f"{SOURCE_URL}/blob/{SOURCE_BRANCH}/{path}#L{start}-L{end}"
    assert shown.code == textwrap.dedent("".join(lines))
    # The file really holds these lines there.
    file_lines = (ROOT / path).read_text().splitlines(keepends=True)
    assert file_lines[start - 1:end] == lines


def test_a_method_is_dedented_and_starts_at_its_def():
    shown = show_source(UNet.forward)
    assert shown.code.startswith("def forward(")
    assert shown.path == "segtutor/models/unet.py"
    assert shown.data == shown.code  # the attribute IPython.display.Code has


def test_a_bound_method_and_a_property_work():
    net = UNet(num_classes=2, in_channels=1, base_channels=4, depth=2)
    assert show_source(net.forward).first_line == show_source(UNet.forward).first_line
    prop = next(value for value in vars(UNet).values() if isinstance(value, property))
    assert show_source(prop).code.lstrip().startswith(("@property", "def "))


def test_a_range_counts_from_the_objects_first_line():
    lines, start = expected_lines(UNet.forward)
    shown = show_source(UNet.forward, lines=(2, 4))
    assert (shown.first_line, shown.last_line) == (start + 1, start + 3)
    assert shown.code == textwrap.dedent("".join(lines[1:4]))
    assert shown.url.endswith(f"#L{start + 1}-L{start + 3}")
    assert shown.caption.endswith(f"lines {start + 1}\u2013{start + 3}")
    every = show_source(UNet.forward, lines=[1, len(lines)])
    assert every == show_source(UNet.forward)


def test_one_line_says_line():
    _, start = expected_lines(UNet.forward)
    shown = show_source(UNet.forward, lines=(1, 1))
    assert shown.caption == f"segtutor/models/unet.py, line {start}"
    assert shown.url.endswith(f"#L{start}") and "-L" not in shown.url.rsplit("#", 1)[1]
    assert shown.code.startswith("def forward(") and shown.code.count("\n") == 1


@pytest.mark.parametrize("lines", [(3, 2), (0, 2), (-1, 2), (1, 10_000), (1, 2, 3)],
                         ids=["reversed", "zero", "negative", "past the end", "three"])
def test_bad_ranges_are_value_errors_that_say_the_size(lines):
    count = len(inspect.getsourcelines(UNet.forward)[0])
    with pytest.raises(ValueError, match=rf"lines must be .*UNet\.forward has {count} lines"):
        show_source(UNet.forward, lines=lines)


@pytest.mark.parametrize("lines", [(1.0, 2), ("1", "2"), (True, 2), "1-3", 3],
                         ids=["float", "strings", "bool", "string", "int"])
def test_ranges_of_the_wrong_type_are_type_errors(lines):
    with pytest.raises(TypeError, match="lines must be .* of ints"):
        show_source(UNet.forward, lines=lines)


@pytest.mark.parametrize("obj", [len, int, dict.get, torch.relu],
                         ids=["builtin function", "builtin class", "method descriptor",
                              "torch C function"])
def test_builtins_have_no_source(obj):
    with pytest.raises(TypeError, match="built into Python or compiled"):
        show_source(obj)


@pytest.mark.parametrize("obj", [3, "UNet.forward"], ids=["int", "string"])
def test_instances_are_refused(obj):
    with pytest.raises(TypeError, match="takes a function, class, method or module, got"):
        show_source(obj)


def test_code_outside_segtutor_has_a_caption_but_no_link():
    shown = show_source(torch.nn.Conv2d.forward)
    assert shown.url is None
    assert shown.path == "torch/nn/modules/conv.py"
    assert shown.caption.startswith("torch/nn/modules/conv.py, lines ")
    assert "<a " not in shown._repr_html_()
    assert shown._repr_markdown_().startswith("torch/nn/modules/conv.py, lines ")


def test_html_has_the_linked_caption_above_highlighted_code():
    shown = show_source(UNet.forward, lines=(1, 3))
    page = shown._repr_html_()
    assert f"<a href=\"{shown.url}\">{shown.caption}</a>" in page
    assert page.index("segtutor-source-caption") < page.index('<div class="highlight">')
    assert '<span class="k">def</span>' in page  # pygments classes the book's theme colours


def test_text_and_markdown_fallbacks():
    shown = show_source(UNet.forward, lines=(1, 2))
    text = repr(shown)
    assert text.startswith(f"{shown.caption} ({shown.url})\n\n")
    assert text.endswith(shown.code.rstrip())
    markdown = shown._repr_markdown_()
    assert markdown.startswith(f"[{shown.caption}]({shown.url})\n\n```python\n")
    assert markdown.rstrip().endswith("```")


def test_a_fence_longer_than_any_backticks_in_the_code():
    shown = Source(code='x = "````"\n', path="a.py", first_line=1, last_line=1, url=None)
    assert "\n`````python\n" in shown._repr_markdown_()


# -- benchmark_results: the one way a chapter reads benchmarks/results/ --------------------


def test_benchmark_results_reads_the_clones_file():
    import csv

    from segtutor.viz.source import benchmark_results

    results = benchmark_results("deeplab_shapes.csv")
    path = Path(source.__file__).resolve().parents[2] / "benchmarks" / "results" / "deeplab_shapes.csv"
    assert results.origin == str(path)
    lines = path.read_text().splitlines()
    assert results.comments == tuple(line[1:].strip() for line in lines if line.startswith("#"))
    expected = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert list(results.rows) == expected
    assert results.column("miou", variant="os8") == [float(r["miou"]) for r in expected
                                                     if r["variant"] == "os8"]
    assert results.where(variant="os8", seed=0) == [r for r in expected
                                                   if r["variant"] == "os8" and r["seed"] == "0"]
    with pytest.raises(KeyError, match="has no column 'mIoU'"):
        results.column("mIoU")


def test_benchmark_results_falls_back_to_the_repository(monkeypatch, tmp_path):
    import urllib.error
    import urllib.request

    from segtutor.viz.source import benchmark_results

    asked = []

    def offline(url, timeout):
        asked.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="missing.csv is neither at .* nor at https://"):
        benchmark_results("missing.csv")
    assert asked == [SOURCE_URL.replace("https://github.com/", "https://raw.githubusercontent.com/")
                     + f"/{SOURCE_BRANCH}/benchmarks/results/missing.csv"]


@pytest.mark.parametrize(("name", "error"), [
    (3, TypeError), ("../README.md", ValueError), ("results.txt", ValueError),
    ("a/b.csv", ValueError)])
def test_benchmark_results_refuses_bad_names(name, error):
    from segtutor.viz.source import benchmark_results

    with pytest.raises(error, match="name must be"):
        benchmark_results(name)
