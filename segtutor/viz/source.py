"""Showing the package's own source in the book, so that text and code never drift apart.

:func:`show_source` displays the real source of a function, class, method or module, under
a caption that names the file and the lines and links to them in the repository::

    show_source(UNet.forward)                 # one method
    show_source(UNet, lines=(1, 12))          # the first twelve lines of the class

The repository's address is :data:`SOURCE_URL` and its branch :data:`SOURCE_BRANCH` (the
package never reads the book's ``_config.yml``; a project test checks that they agree).

:func:`benchmark_results` reads a committed results file of ``benchmarks/results/`` (from
the clone the package is installed from, else from the repository online, e.g. on Colab),
so a chapter quotes a benchmark's numbers without retyping them.
"""

from __future__ import annotations

import csv
import html
import inspect
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._checks import check_interval

__all__ = ["SOURCE_BRANCH", "SOURCE_URL", "BenchmarkResults", "Source", "benchmark_results",
           "show_source"]

#: The repository whose files the captions of :func:`show_source` link to.
SOURCE_URL = "https://github.com/segtutor/segtutor"
#: The branch those links point into.
SOURCE_BRANCH = "main"

#: The folder of the ``segtutor`` package (``segtutor/`` at the root of the repository).
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, repr=False)
class Source:
    """Lines of source code with where they come from; displays itself in a notebook.

    In Jupyter and in the book's HTML it shows a caption such as
    "segtutor/models/unet.py, lines 120–146", linked to those lines in the repository
    (for files of ``segtutor``), above the syntax-highlighted code (HTML; Markdown with a
    fenced code block where HTML is not shown); as plain text, the caption, the link and
    the code.

    Attributes:
        code: the lines shown, dedented (a method's indentation removed).
        path: the file, relative to the repository root for ``segtutor``'s own files
            (``segtutor/models/unet.py``), to its ``sys.path`` entry for other installed
            code (``torch/nn/modules/conv.py``), else the file name.
        first_line: the first line shown, 1-based, in the file.
        last_line: the last line shown, in the file.
        url: the lines in the repository (``.../blob/main/segtutor/...#L120-L146``), or
            ``None`` for code outside ``segtutor``.
    """

    code: str
    path: str
    first_line: int
    last_line: int
    url: str | None

    @property
    def data(self) -> str:
        """The code, under the name ``IPython.display.Code`` gives it."""
        return self.code

    @property
    def caption(self) -> str:
        """``"segtutor/models/unet.py, lines 120–146"`` (or ``"line 7"`` for one line)."""
        if self.first_line == self.last_line:
            return f"{self.path}, line {self.first_line}"
        return f"{self.path}, lines {self.first_line}\u2013{self.last_line}"

    def _repr_html_(self) -> str:
        from IPython.display import Code

        caption = html.escape(self.caption)
        if self.url is not None:
            caption = f'<a href="{html.escape(self.url)}">{caption}</a>'
        # Code's HTML is pygments' <div class="highlight">: the book's theme colours it (light
        # and dark, like every code cell); its <style> block applies only in Jupyter.
        return (f'<div class="segtutor-source"><p class="segtutor-source-caption" '
                f'style="margin: 0 0 0.25em; font-size: 0.9em;">{caption}</p>'
                f'{Code(self.code, language="python")._repr_html_()}</div>')

    def _repr_markdown_(self) -> str:
        caption = self.caption if self.url is None else f"[{self.caption}]({self.url})"
        longest = max((len(run) for run in re.findall(r"`+", self.code)), default=0)
        fence = "`" * max(3, longest + 1)
        return f"{caption}\n\n{fence}python\n{self.code.rstrip()}\n{fence}\n"

    def __repr__(self) -> str:
        where = self.caption if self.url is None else f"{self.caption} ({self.url})"
        return f"{where}\n\n{self.code.rstrip()}"


def show_source(obj: Any, *, lines: tuple[int, int] | None = None) -> Source:
    """Display the real source code of a function, class, method or module, with its place.

    The book uses this instead of pasting code, so the text always shows what runs. The
    caption names the file and the lines shown and, for ``segtutor``'s own files, links to
    them in the repository (:data:`SOURCE_URL`, branch :data:`SOURCE_BRANCH`). A chapter
    hides the ``show_source(...)`` call itself with the cell tag ``remove-input``.

    Args:
        obj: a function, class, method (``UNet.forward``), property, or module. Decorated
            functions show the function they wrap, decorators included.
        lines: ``(first, last)``, 1-based and inclusive, counted from the object's own first
            line (its first decorator, or its ``def`` or ``class`` line; a module's first
            line), so they stay right when the file changes above the object. ``None``
            shows the whole object.

    Returns:
        a :class:`Source`, which Jupyter and the book display as caption plus code.

    Raises:
        TypeError: ``obj`` has no Python source (a built-in or C function or class, an
            instance), or ``lines`` is not a pair of ints.
        ValueError: ``lines`` is reversed or reaches outside the object.
        OSError: the source file cannot be read.
    """
    target = obj.fget if isinstance(obj, property) and obj.fget is not None else obj
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(obj)
    try:
        filename = inspect.getsourcefile(target) or inspect.getfile(target)
        source_lines, start = inspect.getsourcelines(target)
    except TypeError:
        if inspect.isbuiltin(target) or inspect.ismethoddescriptor(target) or (
                inspect.isclass(target) or inspect.isroutine(target)):
            raise TypeError(f"show_source() cannot show {name}: it is built into Python or "
                            f"compiled (written in C), so there is no Python source to "
                            f"show") from None
        raise TypeError(f"show_source() takes a function, class, method or module, got "
                        f"{type(obj).__name__} {_short(obj)}") from None
    except OSError as error:
        raise OSError(f"show_source() cannot read the source of {name}: {error}") from None
    start = max(start, 1)  # a module's source starts at line 0 for inspect
    count = len(source_lines)
    if lines is not None:
        try:
            first, last = check_interval(lines, "lines", minimum=1, maximum=count, integer=True)
        except ValueError as error:
            raise ValueError(f"{error}: {name} has {count} lines, counted from 1 at its first "
                             f"line (line {start} of its file)") from None
        source_lines = source_lines[first - 1:last]
        start, count = start + first - 1, last - first + 1
    path, url = _locate(filename)
    end = start + count - 1
    if url is not None:
        url += f"#L{start}" if start == end else f"#L{start}-L{end}"
    code = textwrap.dedent("".join(source_lines))
    return Source(code=code, path=path, first_line=start, last_line=end, url=url)


@dataclass(frozen=True)
class BenchmarkResults:
    """A results file of ``benchmarks/results/``: its comment lines and its CSV rows.

    Attributes:
        name: the file's name, e.g. ``"global_context.csv"``.
        origin: where it was read from (a path or a URL).
        comments: the leading ``#`` lines (machine, date, command), without the ``#``.
        rows: the CSV rows as dictionaries of strings.
    """

    name: str
    origin: str
    comments: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    def where(self, **match: str) -> list[dict[str, str]]:
        """The rows whose columns equal ``match`` (values compared as strings)."""
        return [row for row in self.rows
                if all(row.get(key) == str(value) for key, value in match.items())]

    def column(self, key: str, **match: str) -> list[float]:
        """Column ``key`` as floats, over the rows that equal ``match``.

        Raises:
            KeyError: no column ``key``.
        """
        if self.rows and key not in self.rows[0]:
            raise KeyError(f"{self.name} has no column {key!r}; it has {tuple(self.rows[0])}")
        return [float(row[key]) for row in self.where(**match)]


def benchmark_results(name: str) -> BenchmarkResults:
    """Read ``benchmarks/results/<name>``: from this clone if there is one, else online.

    The clone is the repository that holds the installed ``segtutor`` package (an editable
    install); without one (a plain ``pip install``, Colab) the file is fetched from
    :data:`SOURCE_URL` at :data:`SOURCE_BRANCH`.

    Raises:
        TypeError: ``name`` is not a ``str``.
        ValueError: ``name`` is not a plain ``.csv`` file name.
        FileNotFoundError: not in the clone, and not online either.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r} ({type(name).__name__})")
    if not re.fullmatch(r"[\w.-]+\.csv", name):
        raise ValueError(f"name must be the name of a .csv file in benchmarks/results/, "
                         f"got {name!r}")
    local = _PACKAGE_DIR.parent / "benchmarks" / "results" / name
    if local.is_file():
        text, origin = local.read_text(), str(local)
    else:
        import urllib.error
        import urllib.request

        origin = (SOURCE_URL.replace("https://github.com/", "https://raw.githubusercontent.com/")
                  + f"/{SOURCE_BRANCH}/benchmarks/results/{name}")
        try:
            with urllib.request.urlopen(origin, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.URLError as error:
            raise FileNotFoundError(f"{name} is neither at {local} nor at {origin} "
                                    f"({error})") from error
    lines = text.splitlines()
    comments = tuple(line.lstrip("#").strip() for line in lines if line.startswith("#"))
    rows = tuple(csv.DictReader(line for line in lines if line and not line.startswith("#")))
    return BenchmarkResults(name, origin, comments, rows)


def _locate(filename: str) -> tuple[str, str | None]:
    """The path to show for a source file, and its address in the repository (if ours)."""
    file = Path(filename).resolve()
    if file.is_relative_to(_PACKAGE_DIR):
        path = (Path(_PACKAGE_DIR.name) / file.relative_to(_PACKAGE_DIR)).as_posix()
        return path, f"{SOURCE_URL}/blob/{SOURCE_BRANCH}/{path}"
    roots = [Path(entry).resolve() for entry in sys.path if entry]
    containing = [root for root in roots if file.is_relative_to(root)]
    if containing:
        root = max(containing, key=lambda root: len(root.parts))
        return file.relative_to(root).as_posix(), None
    return file.name, None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
