"""The glossary and the "From the primer" page agree with the book.

``book/glossary.md`` is a Sphinx glossary (MyST's ``{glossary}`` directive): every entry has an
English and a Chinese term and a ``{ref}`` to a label that a chapter defines; every entry is
linked from a chapter with ``{term}``, and every ``{term}`` in the book names an entry (Sphinx
only warns about an unknown term, and only when it builds). ``book/from_the_primer.md`` maps
every section of the Chinese primer (its headings are listed in the page, and compared with the
primer itself where ``../shared/source`` is present) and links every correction to its evidence.
The book's labels, ``(name)=`` lines in markdown cells and pages, are defined once each.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
GLOSSARY = BOOK / "glossary.md"
PRIMER_PAGE = BOOK / "from_the_primer.md"
#: The Chinese primer the book grew from; absent in a fresh clone.
PRIMER_SOURCE = ROOT.parent / "shared" / "source"

ROLE = re.compile(r"\{(term|ref|doc)\}`([^`]+)`")
LABEL = re.compile(r"^\(([A-Za-z0-9_.:-]+)\)=[ \t]*$", re.M)
CJK = re.compile(r"[\u3400-\u9fff]")
SECTION_LINE = re.compile(r"^% primer-section: (.+)$", re.M)


def chapter_notebooks() -> list[Path]:
    return sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


def markdown_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]


def book_pages() -> list[Path]:
    """Every MyST page of the book (not the generated API reference)."""
    return sorted(BOOK.glob("*.md"))


@functools.cache
def book_texts() -> dict[str, str]:
    """Name -> markdown of every chapter and page (notebooks: their markdown cells only)."""
    texts = {nb.name: "\n\n".join(markdown_cells(nb)) for nb in chapter_notebooks()}
    texts.update({page.name: page.read_text(encoding="utf-8") for page in book_pages()})
    return texts


def normalise(term: str) -> str:
    """How Sphinx matches a ``{term}``: lower case; whitespace (a line break) as one space."""
    return " ".join(term.split()).lower()


def role_target(content: str) -> str:
    """``text <target>`` -> ``target``; ``target`` -> ``target``."""
    match = re.fullmatch(r"(.*?)\s*<([^<>]+)>", content, re.S)
    return " ".join((match[2] if match else content).split())


def roles(text: str, kind: str) -> list[str]:
    return [role_target(content) for name, content in ROLE.findall(text) if name == kind]


def glossary_entries() -> list[tuple[list[str], str]]:
    """The entries of the page's ``{glossary}`` block: (terms, definition)."""
    text = GLOSSARY.read_text(encoding="utf-8")
    block = re.search(r"^```\{glossary\}\n(.*?)^```$", text, re.S | re.M)
    assert block, "book/glossary.md has no ```{glossary} block"
    entries: list[tuple[list[str], str]] = []
    terms: list[str] = []
    definition: list[str] = []
    for line in block[1].splitlines() + [""]:
        if not line.strip():
            continue
        if line.startswith(":") and not entries and not terms:
            continue  # a directive option (:sorted:)
        if line[0].isspace():
            assert terms, f"definition line without a term: {line!r}"
            definition.append(line.strip())
            continue
        if definition:
            entries.append((terms, " ".join(definition)))
            terms, definition = [], []
        terms.append(line.strip())
    if terms:
        assert definition, f"the glossary's last entry {terms} has no definition"
        entries.append((terms, " ".join(definition)))
    return entries


@functools.cache
def defined_labels() -> dict[str, list[str]]:
    """Label -> the files that define it."""
    found: dict[str, list[str]] = {}
    for name, text in book_texts().items():
        for label in LABEL.findall(text):
            found.setdefault(label, []).append(name)
    return found


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [entry["file"] for part in toc["parts"] for entry in part["chapters"]]


def unresolved(text: str) -> list[str]:
    """The ``{ref}`` and ``{doc}`` targets of ``text`` that the book does not define."""
    labels = defined_labels()
    missing = [f"{{ref}} {target}" for target in roles(text, "ref") if target not in labels]
    for target in roles(text, "doc"):
        path = (BOOK / target.split("#")[0]).resolve()
        if not any(path.with_suffix(suffix).is_file() for suffix in (".md", ".ipynb")):
            missing.append(f"{{doc}} {target}")
    return missing


def numbered_items(text: str, heading: str) -> list[str]:
    """The numbered list items of the ``## heading`` section of ``text``."""
    section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, f"no section '## {heading}'"
    items = re.split(r"^\d+\. ", section[1], flags=re.M)[1:]
    assert items, f"the section '## {heading}' has no numbered list"
    return items


def primer_sections_listed() -> list[str]:
    return [line.strip() for line in SECTION_LINE.findall(PRIMER_PAGE.read_text(encoding="utf-8"))]


def primer_table_rows() -> list[list[str]]:
    text = PRIMER_PAGE.read_text(encoding="utf-8")
    section = re.search(r"^## The primer, section by section\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "no section '## The primer, section by section'"
    rows = [line for line in section[1].splitlines() if line.startswith("|")]
    assert len(rows) > 2, "the section has no table"
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def heading_text(line: str) -> str:
    """A markdown heading's text, without its #s and emphasis."""
    return line.lstrip("#").replace("*", "").strip()


# --- the glossary ------------------------------------------------------------------------------


def test_every_entry_has_an_english_and_a_chinese_term_and_a_definition():
    entries = glossary_entries()
    assert len(entries) >= 40, f"only {len(entries)} glossary entries"
    for terms, definition in entries:
        english = [term for term in terms if not CJK.search(term)]
        chinese = [term for term in terms if CJK.search(term)]
        assert english and not CJK.search(terms[0]), f"{terms}: start the entry with its English term"
        assert chinese, f"{terms}: no Chinese term"
        assert len(definition.split()) >= 8, f"{terms}: the definition is too short: {definition!r}"


def test_no_term_is_defined_twice():
    seen: dict[str, list[str]] = {}
    for terms, _ in glossary_entries():
        for term in terms:
            assert normalise(term) not in seen, f"{term!r} is in {seen[normalise(term)]} and {terms}"
            seen[normalise(term)] = terms


def test_every_entry_links_to_a_section_that_exists():
    for terms, definition in glossary_entries():
        assert roles(definition, "ref"), f"{terms[0]}: link the section that teaches it with {{ref}}"
        assert not unresolved(definition), f"{terms[0]}: {unresolved(definition)}"


def test_every_entry_is_linked_from_a_chapter():
    used = {normalise(target) for nb in chapter_notebooks()
            for cell in markdown_cells(nb) for target in roles(cell, "term")}
    unlinked = [terms[0] for terms, _ in glossary_entries()
                if not used & {normalise(term) for term in terms}]
    assert not unlinked, f"no chapter links these glossary entries with {{term}}: {unlinked}"


def test_every_term_role_names_a_glossary_entry():
    known = {normalise(term) for terms, _ in glossary_entries() for term in terms}
    unknown = [(name, target) for name, text in book_texts().items()
               for target in roles(text, "term") if normalise(target) not in known]
    assert not unknown, f"{{term}} roles that name no glossary entry: {unknown}"


# --- labels --------------------------------------------------------------------------------------


def test_every_label_is_defined_once():
    duplicates = {label: files for label, files in defined_labels().items() if len(files) > 1}
    assert not duplicates, f"labels defined more than once: {duplicates}"


def test_every_ref_in_the_book_resolves():
    missing = {name: unresolved(text) for name, text in book_texts().items() if unresolved(text)}
    assert not missing, f"links to labels or pages that do not exist: {missing}"


def test_the_two_pages_are_in_the_toc_outside_the_numbered_chapters():
    files = toc_files()
    assert "book/glossary" in files and "book/from_the_primer" in files
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for part in toc["parts"]:
        names = [entry["file"] for entry in part["chapters"]]
        if "book/glossary" in names:
            assert not part.get("numbered"), "the glossary's part must not renumber the chapters"


# --- the primer ------------------------------------------------------------------------------------


def test_the_map_has_a_row_for_every_section_of_the_primer():
    listed = primer_sections_listed()
    assert listed, "book/from_the_primer.md lists no '% primer-section:' lines"
    rows = primer_table_rows()
    first = [row[0] for row in rows]
    assert first == listed, f"the table's rows {first} are not the listed sections {listed}"
    for row in rows:
        assert len(row) == 3, f"{row[0]}: expected 3 columns, got {len(row)}"
        links = roles(row[2], "ref") + roles(row[2], "doc")
        assert links, f"{row[0]}: the row links no chapter section"
        assert not unresolved(row[2]), f"{row[0]}: {unresolved(row[2])}"


def test_the_listed_sections_are_the_primers_headings():
    files = sorted(PRIMER_SOURCE.glob("*")) if PRIMER_SOURCE.is_dir() else []
    if not files:
        pytest.skip(f"the primer is not at {PRIMER_SOURCE} (a fresh clone has no ../shared)")
    headings = [heading_text(line) for path in files if path.is_file()
                for line in path.read_text(encoding="utf-8").splitlines()
                if re.match(r"#{1,6}\s", line)]
    assert headings == primer_sections_listed()


@pytest.mark.parametrize("heading", ["What the book corrects", "What the book qualifies",
                                     "What the book confirms"])
def test_every_statement_links_to_its_evidence(heading):
    items = numbered_items(PRIMER_PAGE.read_text(encoding="utf-8"), heading)
    for item in items:
        title = item.split("**")[1] if "**" in item else item[:60]
        assert roles(item, "ref"), f"{heading}: {title!r} links no evidence"
        assert not unresolved(item), f"{heading}: {title!r}: {unresolved(item)}"


def test_the_corrections_the_issue_names_are_listed():
    corrections = " ".join(numbered_items(PRIMER_PAGE.read_text(encoding="utf-8"),
                                          "What the book corrects"))
    for needle in ["W_2 + (W_2 - 1)(s - 1)", "four poolings", "反激活", "deconvnet"]:
        assert needle in corrections, f"the corrections do not mention {needle!r}"
