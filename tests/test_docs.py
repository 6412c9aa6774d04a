"""The docs' rules, checked on the source: pages are reference (short table cells, every cited
test exists, every link between pages resolves), and the history of past runs lives in
docs/history.md, not in app/'s comments."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
MAX_CELL = 400
# A past run's seed or round named in app/: the story belongs in docs/history.md, the comment
# states the invariant and names the test.
RUN_STORY = re.compile(r"\bseeds? \d|\bgoal run\b|\bchaos campaign\b", re.IGNORECASE)
# Being rewritten in parallel; their run-citing comments are listed for the integrator.
RUN_STORY_PENDING = {
    "app/queueing/workers.py",
    "app/queueing/liveness.py",
}
CITED_TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def outside_code_blocks(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def table_cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(line) for line in outside_code_blocks(page.read_text()) if line.startswith("#")}


def long_cells(page: Path, root: Path = ROOT) -> list[str]:
    return [
        f"{page.relative_to(root)}: {cell[:60]}… ({len(cell)} characters)"
        for line in outside_code_blocks(page.read_text())
        if line.startswith("|")
        for cell in table_cells(line)
        if len(cell) > MAX_CELL
    ]


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{page.relative_to(root)} → {target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{page.relative_to(root)} → {target}: no such heading")
    return broken


def missing_tests(page: Path, root: Path = ROOT) -> list[str]:
    missing = []
    for path, name in CITED_TEST.findall(page.read_text()):
        source = root / path
        if not source.exists() or not re.search(rf"\bdef {name}\(", source.read_text()):
            missing.append(f"{page.relative_to(root)} cites {path}::{name}")
    return missing


def run_stories(path: Path, root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if RUN_STORY.search(line)
    ]


def test_no_table_cell_is_longer_than_the_limit():
    assert [cell for page in PAGES for cell in long_cells(page)] == []


def test_every_link_between_pages_resolves():
    assert [link for page in PAGES for link in broken_links(page)] == []


def test_every_cited_test_exists():
    assert [test for page in PAGES for test in missing_tests(page)] == []


def test_no_comment_in_app_tells_a_past_runs_story():
    sources = [path for path in sorted((ROOT / "app").rglob("*.py")) if str(path.relative_to(ROOT)) not in RUN_STORY_PENDING]
    assert [story for path in sources for story in run_stories(path)] == []


def test_the_rules_above_catch_what_they_look_for(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n## Its `section`, here\n\n"
        f"| a | b |\n|---|---|\n| {'x' * (MAX_CELL + 1)} | short |\n\n"
        "[ok](#its-section-here) [gone](#nowhere) [missing](other.md)\n\n"
        "`tests/test_docs.py::test_no_such_test`\n"
    )
    source = tmp_path / "module.py"
    source.write_text("# the third goal run's seed 4 found this\nx = 1  # a seed-independent value\n")
    assert len(long_cells(page, tmp_path)) == 1
    assert [link.split(" → ")[1] for link in broken_links(page, tmp_path)] == ["#nowhere: no such heading", "other.md: no such file"]
    assert len(missing_tests(page, tmp_path)) == 1
    assert [story.split(":")[1] for story in run_stories(source, tmp_path)] == ["1"]
