"""The widgets in a live JupyterLab: keys, drawing, readout and Python agree, both ways.

Starts JupyterLab (``python -m jupyter lab`` from this environment) on 127.0.0.1 with a random
free port and a token, in a temporary folder that also holds its config, settings, workspaces
and runtime folders (so it neither reads nor changes the user's). Into that folder go two
notebooks made from the chapters themselves: the widget cell of chapter 2 (ConvExplorer) and
of chapter 4 (ReceptiveFieldViewer), each with the setup cell and the earlier cells that
define what the widget cell uses (found by reading the cells' names with :mod:`ast`), so the
test runs what the chapter runs, in seconds. Headless Chromium opens each notebook, runs all
its cells in a live kernel, and then:

* focuses a slider and presses the arrow keys, with the notebook in command mode: the value,
  the readout and the drawing change, and the kernel's traits (read by a second client of the
  same kernel, ``jupyter_client``) agree with the page, with :mod:`segtutor.arithmetic` and
  with the output shape of ``torch.nn.functional.conv2d`` (chapter 2) or the region Python
  computes (chapter 4);
* sets a trait from Python: the page redraws to it (chapter 4: a corner unit, whose ring must
  lie inside the drawing).

Before the widgets marked their controls with ``data-lm-suppress-shortcuts``, JupyterLab's
command-mode shortcuts took the arrow keys and the slider did not move.

Skips when JupyterLab, jupyter_client, Playwright or Chromium is missing, unless
SEGTUTOR_REQUIRE_SITE=1 (then that is a failure). The server and its kernels are shut down
at the end (POST /api/shutdown, then the process is terminated if it lingers).
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segtutor import arithmetic

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
# Chromium's path and flags, and the skip-or-fail rule, are the site tests' (one place).
sys.path.insert(0, str(ROOT / "tests" / "site"))
from offline_site import chromium, ring_extent, unavailable  # noqa: E402

#: (notebook written, chapter, text that marks the widget cell, the widget's root selector)
NOTEBOOKS = {
    "explorer": ("explorer.ipynb", "book/02_convolution_arithmetic.ipynb", "ConvExplorer(",
                 '[data-testid="conv-explorer"]'),
    "viewer": ("viewer.ipynb", "book/04_upsampling_encoder_decoder.ipynb", "ReceptiveFieldViewer(",
               '[data-testid="receptive-field-viewer"]'),
}
#: Appended to chapter 2's notebook: its widget cell shows the explorer without naming it.
NAME_THE_EXPLORER = "explorer = _  # the ConvExplorer the cell above displayed"
STARTUP_S = 90
WIDGET_S = 180


# ----------------------------------------------------------------------- the notebooks


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell binds, names it reads) — over-approximate, which only adds cells."""
    bound, read = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound, read


def widget_cells(chapter: Path, marker: str) -> list[str]:
    """The chapter's setup cell, the first cell containing ``marker`` and every earlier code
    cell that binds a name those cells (transitively) read, in the chapter's order."""
    cells = ["".join(cell["source"]) for cell in json.loads(chapter.read_text())["cells"]
             if cell["cell_type"] == "code"]
    target = next((n for n, source in enumerate(cells) if marker in source), None)
    if target is None:
        raise ValueError(f"{chapter} has no code cell containing {marker!r}")
    bound, read = _names(cells[target])
    needed = read - bound - set(dir(builtins))
    chosen = {0, target}  # the first code cell is the setup cell (installs, seeds, runtime)
    for n in range(target - 1, 0, -1):
        bound, read = _names(cells[n])
        if bound & needed:
            chosen.add(n)
            needed = (needed - bound) | (read - bound - set(dir(builtins)))
    return [cells[n] for n in sorted(chosen)]


def write_notebook(path: Path, sources: list[str]) -> None:
    """An nbformat 4 notebook of code cells, for the environment's python3 kernel."""
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    nbformat.write(notebook, path)


# ----------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: where it listens, its token, its folders."""

    url: str
    token: str
    root: Path
    runtime: Path
    process: subprocess.Popen

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(f"{self.url}api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def page_url(self, notebook: str) -> str:
        return f"{self.url}lab/tree/{notebook}?token={self.token}"

    def kernel_client(self, notebook: str):
        """A second client (jupyter_client) of the kernel behind ``notebook``'s session."""
        from jupyter_client import BlockingKernelClient

        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            sessions = [s for s in self.api("sessions") if s["path"].endswith(notebook)]
            if sessions and (self.runtime / f"kernel-{sessions[0]['kernel']['id']}.json").is_file():
                client = BlockingKernelClient(
                    connection_file=str(self.runtime / f"kernel-{sessions[0]['kernel']['id']}.json"))
                client.load_connection_file()
                client.start_channels()
                # (not wait_for_ready: without a kernel manager it reads a heartbeat that has
                # not started yet as a dead kernel)
                request = client.kernel_info()
                while client.get_shell_msg(timeout=STARTUP_S)["parent_header"].get("msg_id") != request:
                    pass
                return client
            time.sleep(0.5)
        raise AssertionError(f"no kernel for {notebook} after {STARTUP_S} s: {self.api('sessions')}")

    def stop(self) -> None:
        """Shut the server and its kernels down; terminate the process if it lingers."""
        try:
            self.api("shutdown", method="POST")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    missing = [name for name in ("jupyterlab", "jupyter_client", "nbformat", "ipykernel")
               if importlib.util.find_spec(name) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed; pip install -r requirements.txt")
    base = tmp_path_factory.mktemp("jupyterlab")
    root, runtime = base / "notebooks", base / "runtime"
    root.mkdir()
    for name, chapter, marker, _ in NOTEBOOKS.values():
        cells = widget_cells(ROOT / chapter, marker)
        write_notebook(root / name, cells + ([NAME_THE_EXPLORER] if name == "explorer.ipynb" else []))
    # the python3 kernel runs this interpreter (the installed spec says just "python")
    spec = base / "data" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    env = {**os.environ, "JUPYTER_PATH": str(base / "data"), "JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_RUNTIME_DIR": str(runtime),
           "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"), "IPYTHONDIR": str(base / "ipython"),
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly",
               "--ServerApp.allow_root=True"]  # CI containers run as root
    log = (base / "server.log").open("w")
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Lab(f"http://127.0.0.1:{port}/", token, root, runtime, process)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                server.api("status")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    log_text = (base / "server.log").read_text()[-3000:]
                    raise AssertionError(f"JupyterLab did not start: {log_text}") from None
                time.sleep(0.5)
        yield server
    finally:
        server.stop()
        log.close()
        left = sorted(p.name for p in runtime.glob("kernel-*.json"))
        assert not left, f"kernels still running after the shutdown: {left}"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    # Nothing leaves the machine: every host name but 127.0.0.1 fails to resolve. (Not a
    # page.route(): with requests intercepted, JupyterLab never starts the kernel.)
    with chromium("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1") as launched:
        yield launched


@dataclass
class LiveWidget:
    """A widget in a notebook that JupyterLab ran: its page, root element and kernel."""

    page: object
    root: object
    kernel: object
    errors: list[str]

    def python(self, expression: str) -> object:
        """The value of a Python expression in the notebook's kernel (it must print as JSON)."""
        printed: list[str] = []

        def collect(message: dict) -> None:
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            elif message["msg_type"] == "error":
                printed.append("\n".join(message["content"]["traceback"]))

        code = f"import json as _json\nprint(_json.dumps({expression}))"
        reply = self.kernel.execute_interactive(code, output_hook=collect, timeout=60)
        assert reply["content"]["status"] == "ok", "".join(printed)
        return json.loads("".join(printed))

    def run(self, code: str) -> None:
        """Run statements in the notebook's kernel (as a reader's new cell would)."""
        reply = self.kernel.execute_interactive(code, output_hook=lambda message: None, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]

    def settle(self, expression: str, expected: object, seconds: float = 20) -> object:
        """Wait until the kernel's value of ``expression`` is ``expected`` (a change in the
        page reaches the kernel a moment later); returns the last value seen."""
        deadline = time.monotonic() + seconds
        while True:
            value = self.python(expression)
            if value == expected or time.monotonic() > deadline:
                return value
            time.sleep(0.2)

    def press(self, testid: str, key: str) -> None:
        """Focus a control and press a key, as a reader would, with the notebook in command
        mode (where JupyterLab's arrow-key shortcuts apply)."""
        control = self.root.get_by_test_id(testid)
        control.scroll_into_view_if_needed()
        control.focus()
        notebook = self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
        assert "jp-mod-commandMode" in (notebook.get_attribute("class") or ""), \
            "the notebook is not in command mode: the keys would not meet JupyterLab's shortcuts"
        self.page.keyboard.press(key)


def open_live(lab: Lab, browser, which: str) -> Iterator[LiveWidget]:
    """For a module fixture: notebook ``which`` opened and run all, once its widget is drawn."""
    name, _, _, selector = NOTEBOOKS[which]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(lab.page_url(name), wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=STARTUP_S * 1000)
    kernel = lab.kernel_client(name)
    page.get_by_role("menuitem", name="Run", exact=True).click()  # the menu bar's Run menu
    page.locator(".lm-Menu-item", has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))).click()
    root = page.locator(selector).first
    root.wait_for(timeout=WIDGET_S * 1000)
    widget = LiveWidget(page, root, kernel, errors)
    deadline = time.monotonic() + WIDGET_S
    while not widget.python(f"'{which}' in globals()"):  # the last cell has run
        assert time.monotonic() < deadline, f"{name}: its cells did not finish in {WIDGET_S} s"
        time.sleep(0.5)
    yield widget
    kernel.stop_channels()
    page.close()


@pytest.fixture(scope="module")
def explorer(lab, browser) -> Iterator[LiveWidget]:
    """Chapter 2's ConvExplorer, live (the kernel's name for it: ``explorer``)."""
    yield from open_live(lab, browser, "explorer")


@pytest.fixture(scope="module")
def viewer(lab, browser) -> Iterator[LiveWidget]:
    """Chapter 4's ReceptiveFieldViewer, live (``viewer``, as the chapter names it)."""
    yield from open_live(lab, browser, "viewer")


# ----------------------------------------------------------------------- chapter 2


EXPLORER_TRAITS = "{n: getattr(explorer, n) for n in ('i', 'k', 's', 'p', 'd', 'transposed', " \
                  "'output_padding', 'output_size', 'error')}"


def torch_output_size(i: int, k: int, s: int, p: int, d: int) -> int:
    """The output side of F.conv2d on an i x i input: the real reference."""
    return F.conv2d(torch.zeros(1, 1, i, i), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d).shape[-1]


def explorer_page_state(live: LiveWidget) -> dict:
    grid = live.root.get_by_test_id("ce-output-grid")
    rows, cols = int(grid.get_attribute("data-rows")), int(grid.get_attribute("data-cols"))
    assert rows == cols == live.root.locator(".ce-output-cell").count() ** 0.5
    return {"s": int(live.root.get_by_test_id("ce-value-s").inner_text()),
            "slider": int(live.root.get_by_test_id("ce-input-s").input_value()), "drawn": rows,
            "formula": live.root.get_by_test_id("ce-formula").inner_text().splitlines()}


def assert_explorer_agrees(live: LiveWidget, stride: int) -> None:
    """Page, kernel, segtutor.arithmetic and F.conv2d all show stride ``stride``'s size."""
    shown = explorer_page_state(live)
    assert shown["s"] == shown["slider"] == stride, shown
    traits = live.settle(f"{EXPLORER_TRAITS}['s']", stride)
    assert traits == stride, f"the kernel has s={traits}, the page {stride}"
    traits = live.python(EXPLORER_TRAITS)
    i, k, s, p, d = (traits[n] for n in ("i", "k", "s", "p", "d"))
    size = arithmetic.conv_output_size(i, k, s, p, d)
    assert size == torch_output_size(i, k, s, p, d) == traits["output_size"] == shown["drawn"], (traits, shown)
    assert any(line.startswith("o = ") and line.endswith(f"= {size}") for line in shown["formula"]), shown


def test_arrow_keys_move_the_explorer_slider_and_python_agrees(explorer):
    start = explorer.python(EXPLORER_TRAITS)
    assert start["s"] == 2 and not start["transposed"], start  # chapter 2: ConvExplorer(i=5, k=3, s=2, p=1)
    assert_explorer_agrees(explorer, 2)
    before = explorer_page_state(explorer)["drawn"]
    explorer.press("ce-input-s", "ArrowRight")
    assert_explorer_agrees(explorer, 3)
    assert explorer_page_state(explorer)["drawn"] != before, "the drawing did not change"
    explorer.press("ce-input-s", "ArrowLeft")
    explorer.press("ce-input-s", "ArrowLeft")
    assert_explorer_agrees(explorer, 1)
    assert not explorer.errors, explorer.errors


def test_a_change_from_python_redraws_the_explorer(explorer):
    explorer.run("explorer.s = 2")
    explorer.page.wait_for_function(
        "(root) => root.querySelector('[data-testid=\"ce-value-s\"]').textContent === '2'",
        arg=explorer.root.element_handle(), timeout=20_000)
    assert_explorer_agrees(explorer, 2)


# ----------------------------------------------------------------------- chapter 4


VIEWER_STATE = "{'unit': list(viewer.unit), 'layer': viewer.layer, 'region': viewer.region, " \
               "'output_size': viewer.field.output_size}"


def viewer_page_state(live: LiveWidget) -> dict:
    unit = live.root.get_by_test_id("rf-unit")
    full = live.root.get_by_test_id("rf-region-full")
    return {"unit": [int(unit.get_attribute("data-row")), int(unit.get_attribute("data-col"))],
            "sliders": [int(live.root.get_by_test_id(f"rf-{n}").input_value()) for n in ("row", "col")],
            "region": [[int(full.get_attribute(f"data-first-{a}")), int(full.get_attribute(f"data-last-{a}"))]
                       for a in ("row", "col")],
            "readout": live.root.get_by_test_id("rf-readout").inner_text()}


def assert_viewer_agrees(live: LiveWidget, unit: list[int]) -> None:
    """Page and kernel show ``unit``, and the drawn region is the one Python computes."""
    shown = viewer_page_state(live)
    assert shown["unit"] == shown["sliders"] == unit, shown
    assert f"unit ({unit[0]}, {unit[1]})" in shown["readout"], shown["readout"]
    assert live.settle("list(viewer.unit)", unit) == unit
    state = live.python(VIEWER_STATE)
    assert state["region"] == shown["region"], (state, shown)


def test_arrow_keys_move_the_viewer_unit_and_python_agrees(viewer):
    start = viewer_page_state(viewer)["unit"]
    assert_viewer_agrees(viewer, start)
    viewer.press("rf-row", "ArrowRight")
    moved = [start[0] + 1, start[1]]
    assert_viewer_agrees(viewer, moved)
    viewer.press("rf-col", "ArrowLeft")
    assert_viewer_agrees(viewer, [moved[0], moved[1] - 1])
    assert not viewer.errors, viewer.errors


def test_a_change_from_python_moves_the_unit_and_its_ring_fits(viewer):
    rows, cols = viewer.python("viewer.field.output_size")
    ring = viewer.root.locator(".rf-unit-ring")
    assert float(ring.get_attribute("r")) > 0, "chapter 4's 160x160 output should ring its unit"
    for unit in ([0, 0], [0, cols - 1], [rows - 1, 0], [rows - 1, cols - 1]):
        viewer.run(f"viewer.unit = {unit}")
        viewer.page.wait_for_function(
            "([root, unit]) => { const u = root.querySelector('[data-testid=\"rf-unit\"]');"
            " return Number(u.dataset.row) === unit[0] && Number(u.dataset.col) === unit[1]; }",
            arg=[viewer.root.element_handle(), unit], timeout=20_000)
        assert_viewer_agrees(viewer, unit)
        frame = viewer.root.get_by_test_id("rf-drawing").bounding_box()  # after any scrolling
        left, top, right, bottom = ring_extent(ring)
        assert frame["x"] <= left and right <= frame["x"] + frame["width"], (unit, left, right, frame)
        assert frame["y"] <= top and bottom <= frame["y"] + frame["height"], (unit, top, bottom, frame)
    assert not viewer.errors, viewer.errors
