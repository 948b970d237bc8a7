"""Project-wide pytest hooks: a per-notebook timing table for the nbval run.

nbval turns every cell into a test item; the budget that matters is the whole
notebook (at most 3 minutes on the 2-core CPU), so the terminal summary adds the
cells up per notebook. The README's timing table is copied from this output.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section("notebook execution time (nbval)")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(f"{seconds:7.1f} s  {Path(path).name}")
    total = sum(_notebook_seconds.values())
    terminalreporter.write_line(f"{total:7.1f} s  all notebooks")
