"""Project-wide pytest hooks: how long each chapter took to execute.

The budget that matters is the whole chapter (at most 3 minutes on the 2-core CPU).
``tests/notebooks/test_chapters_executed.py`` records each chapter's seconds (the build's
execution, or its own when it had to execute the chapter); a chapter run cell by cell under
nbval (``python -m pytest --nbval-lax book/X.ipynb``) is added up from its cells. The
terminal summary prints both; the README's timing table is copied from it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

#: the book's aim for one chapter, top to bottom, on the 2-core CPU
CHAPTER_BUDGET_SECONDS = 180.0

_nbval_seconds: dict[str, float] = defaultdict(float)
_chapter_seconds: dict[str, tuple[float, str]] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _nbval_seconds[path] += report.duration
    properties = dict(report.user_properties)
    if report.when == "call" and "chapter_seconds" in properties:
        chapter = report.nodeid.rsplit("[", 1)[-1].rstrip("]")
        _chapter_seconds[chapter] = (properties["chapter_seconds"],
                                     properties["chapter_executed_by"])


def _write_table(terminalreporter, title: str, rows: dict[str, tuple[float, str]]) -> None:
    terminalreporter.section(title)
    for name, (seconds, note) in sorted(rows.items()):
        over = "  (over the 3-minute budget)" if seconds > CHAPTER_BUDGET_SECONDS else ""
        terminalreporter.write_line(f"{seconds:7.1f} s  {Path(name).name}  {note}{over}")
    total = sum(seconds for seconds, _ in rows.values())
    terminalreporter.write_line(f"{total:7.1f} s  all chapters")


def pytest_terminal_summary(terminalreporter):
    if _chapter_seconds:
        _write_table(terminalreporter, "chapter execution time",
                     {name: (seconds, f"executed by {by}")
                      for name, (seconds, by) in _chapter_seconds.items()})
    if _nbval_seconds:
        _write_table(terminalreporter, "notebook execution time (nbval)",
                     {name: (seconds, "") for name, seconds in _nbval_seconds.items()})
