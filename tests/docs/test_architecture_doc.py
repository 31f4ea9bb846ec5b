"""docs/architecture.md names real files, and no doc points outside the repository for its facts."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "architecture.md"
# A repository path as the page writes it: under one of these roots, a file with an extension or a folder ending in /.
PATH = re.compile(r"(?<![\w$/.])((?:prefcli|plugins|docs|tests|bench)/[\w./-]*?)(?=[`)\s,;:]|$)")


def _named_paths(text: str) -> list[str]:
    return sorted(
        {
            m.group(1).rstrip(".")
            for m in PATH.finditer(text)
            if "." in m.group(1).split("/")[-1] or m.group(1).endswith("/")
        }
    )


def test_the_page_names_paths_and_they_all_exist():
    named = _named_paths(PAGE.read_text())
    assert len(named) > 60  # the flows and the table name files: a page that names none would pass
    missing = [p for p in named if not (REPO / p).exists()]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_path_reading_finds_what_it_should():
    text = "see `prefcli/ranking.py`, (`plugins/prefcli_clip/`) and prefcli/data/importing.py. $PREFCLI_CACHE/urls/x"
    assert _named_paths(text) == ["plugins/prefcli_clip/", "prefcli/data/importing.py", "prefcli/ranking.py"]


def test_every_part_of_the_package_is_on_the_page():
    text = PAGE.read_text()
    parts = [
        p.relative_to(REPO).as_posix() + "/" for p in (REPO / "prefcli").iterdir() if (p / "__init__.py").is_file()
    ]
    assert parts and not [p for p in parts if p not in text]


def test_no_doc_cites_the_design_notes_outside_the_repository():
    pages = sorted((REPO / "docs").rglob("*.md")) + [REPO / "README.md"]
    citing = [
        f"{p.relative_to(REPO)}:{i}"
        for p in pages
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\b(DESIGN|STYLE)(\.md|\b)", line)
    ]
    assert not citing, (
        f"cites DESIGN.md/STYLE.md, which are not in the repository (cite docs/architecture.md): {citing}"
    )


def test_the_page_is_linked_from_the_readme_and_the_docs_index():
    assert "(docs/architecture.md)" in (REPO / "README.md").read_text()
    assert "(architecture.md)" in (REPO / "docs" / "index.md").read_text()
