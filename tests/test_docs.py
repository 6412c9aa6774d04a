"""The docs' rules, checked on the source: pages are reference (short table cells, every cited
test exists, every link between pages resolves), and the history of past runs lives in
docs/history.md, not in app/'s comments."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
MAX_CELL = 400
# A past run's seed or round named in app/: the story belongs in docs/history.md, the comment
# states the invariant and names the test.
RUN_STORY = re.compile(r"\bseeds? \d|\bgoal run\b|\bchaos campaign\b", re.IGNORECASE)
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
    sources = [path for path in sorted((ROOT / "app").rglob("*.py"))]
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


# Names the docs give for files, commands and scripts: each must exist. Running every command in a
# live stack is left to tests/e2e/test_readme_commands.py (the troubleshooting table) and
# tests/test_dev_stack.py (scripts/run).
REPO_PATH = re.compile(r"^(?:app|scripts|tests|deploy|docs|benchmarks|railway)/[\w./\-]*(?:::\w+)?$")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
MANAGE_COMMAND = re.compile(r"manage\.py (\w+)")
SCRIPT = re.compile(r"(?<![\w/.])scripts/([\w\-]+)(?![\w/.])")


def code_texts(page: Path) -> list[str]:
    """The page's code: inline spans and fenced blocks, where names are written as typed."""
    text, fenced, blocks = page.read_text(), False, []
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            blocks.append(line)
    return CODE_SPAN.findall("\n".join(outside_code_blocks(text))) + blocks


def missing_paths(page: Path, root: Path = ROOT) -> list[str]:
    missing = []
    for span in code_texts(page):
        for token in span.split():
            token = token.strip("(),;:'\"")
            if not REPO_PATH.match(token) or re.search(r"[<*{]", token):
                continue
            path, _, name = token.partition("::")
            source = root / path
            # deploy/env/web.env and the like: the operator's copy of a committed .example (gitignored).
            if not (source.exists() or source.with_name(source.name + ".example").exists()) or (
                name and not re.search(rf"\b(def|class) {name}\b", source.read_text())
            ):
                missing.append(f"{page.relative_to(root)} names {token}")
    return missing


def unknown_commands(page: Path, known: set[str], root: Path = ROOT) -> list[str]:
    return [f"{page.relative_to(root)} runs manage.py {name}" for span in code_texts(page) for name in MANAGE_COMMAND.findall(span) if name not in known]


def undocumented_scripts(page: Path, root: Path = ROOT) -> list[str]:
    """Every scripts/<x> named exists, is executable and says what it does in its header comment."""
    bad = []
    for name in sorted(set(SCRIPT.findall(page.read_text()))):
        script = root / "scripts" / name
        if not script.is_file() or not os.access(script, os.X_OK):
            bad.append(f"{page.relative_to(root)} names scripts/{name}: no such executable")
        elif not re.match(r"#!.*\n# \S", script.read_text()):
            bad.append(f"{page.relative_to(root)} names scripts/{name}: no header comment says what it does")
    return bad


def api_rows(page: Path) -> dict[str, set[str]]:
    """README's endpoint table: each path of the first column (parameters as <>) and its methods."""
    lines = outside_code_blocks(page.read_text())
    start = lines.index("| endpoint | auth | does |")
    rows: dict[str, set[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cell = table_cells(line)[0]
        methods = set(re.findall(r"\b(GET|POST|PUT|PATCH|DELETE)\b", cell))
        for path in re.findall(r"(/[a-z][\w\-/<>.:]*)", cell):
            rows.setdefault(re.sub(r"<[^>]+>", "<>", path), set()).update(methods)
    return rows


def example_path(route: str) -> str:
    """A concrete URL for a route written with <> parameters."""
    return route.replace("<>", "1") if "/media/" not in route else "/media/renditions/x/1/a/b.jpg"


def routes() -> set[str]:
    from django.urls import URLPattern

    from app.urls import urlpatterns

    return {"/" + re.sub(r"<[^>]+>", "<>", str(pattern.pattern)) for pattern in urlpatterns if isinstance(pattern, URLPattern)}


def test_every_path_the_docs_name_exists():
    assert [path for page in PAGES for path in missing_paths(page)] == []


def test_every_manage_py_command_the_docs_name_exists():
    from django.core.management import get_commands

    known = set(get_commands())
    assert [command for page in PAGES for command in unknown_commands(page, known)] == []


def test_every_script_the_docs_name_exists_and_says_what_it_does():
    assert [script for page in PAGES for script in undocumented_scripts(page)] == []


def test_scripts_run_answers_help():
    result = subprocess.run([ROOT / "scripts" / "run", "--help"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0 and result.stdout.startswith("Usage: scripts/run")


def test_readme_endpoint_table_lists_every_route_and_no_other():
    documented, served = set(api_rows(ROOT / "README.md")), routes()
    assert sorted(served - documented) == [], "routes of app/urls.py missing from README's endpoint table"
    assert sorted(documented - served - {"/admin/", "/admin/django-rq/"}) == [], "README rows for no route"


@pytest.mark.django_db
def test_readme_endpoint_table_methods_are_the_served_ones(client):
    """A documented method is served (not 405), GET or POST undocumented is refused with 405."""
    wrong = []
    for route, methods in api_rows(ROOT / "README.md").items():
        if route not in routes():
            continue
        for method in ("GET", "POST"):
            status = getattr(client, method.lower())(example_path(route)).status_code
            if (status == 405) == (method in methods):
                wrong.append(f"{method} {route}: {status}, README {'lists' if method in methods else 'omits'} it")
    assert wrong == []


# The site's own URL paths, as a page names them in backticks (`/healthz`, `/account/reset/<token>/`).
SITE_PATH = re.compile(r"`(/(?:account|admin|api|media|healthz|livez|metrics)\b[^`\s]*)`")
# Named in a page as what is NOT served: django-rq's own admin mount, which the project declines.
NOT_SERVED = {"/admin/django_rq/"}


def unserved_paths(page: Path, root: Path = ROOT) -> list[str]:
    from django.urls import Resolver404, resolve

    unserved = []
    for path in SITE_PATH.findall(page.read_text()):
        prefix = path.removesuffix("...")
        if path.endswith("...") or (path.endswith("/") and any(r.startswith(path) and r != path for r in routes())):
            # a family of pages (`/account/...`, "under `/api/`"): some route must start so
            if not any(route.startswith(prefix) for route in routes()):
                unserved.append(f"{page.relative_to(root)} names {path}: no route starts so")
            continue
        try:
            resolve(re.sub(r"<[^>]+>", "x", path))
        except Resolver404:
            if path not in NOT_SERVED:
                unserved.append(f"{page.relative_to(root)} names {path}: no route")
    return unserved


def test_every_site_path_the_docs_name_is_served():
    assert [path for page in PAGES if page.name != "history.md" for path in unserved_paths(page)] == []


def test_the_path_check_catches_an_unserved_path(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("`/healthz` `/account/reset/<token>/` `/account/...` `/api/nothing-here/` `/metrics/x` `/nothing/...`\n")
    assert unserved_paths(page, tmp_path) == ["page.md names /api/nothing-here/: no route", "page.md names /metrics/x: no route"]


def test_the_name_checks_catch_what_they_look_for(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "real.py").write_text("def there():\n    pass\n")
    page.write_text(
        "`app/real.py` `app/real.py::there` `app/real.py::gone` `app/missing.py` `app/jobs/<queue>.py`\n\n"
        "```\npython manage.py rqstats\npython manage.py nosuchcommand\n```\n\nrun `scripts/nothing`\n"
    )
    assert missing_paths(page, tmp_path) == ["page.md names app/real.py::gone", "page.md names app/missing.py", "page.md names scripts/nothing"]
    assert unknown_commands(page, {"rqstats"}, tmp_path) == ["page.md runs manage.py nosuchcommand"]
    assert undocumented_scripts(page, tmp_path) == ["page.md names scripts/nothing: no such executable"]


def test_every_row_of_the_flower_table_names_the_test_that_runs_it():
    """docs/operations.md maps each Flower view to its place here; a row without its test is a promise."""
    section = (ROOT / "docs" / "operations.md").read_text().split("## From Flower", 1)[1].split("\n## ", 1)[0]
    rows = [table_cells(line) for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")][1:]
    assert len(rows) >= 12
    assert [row[0] for row in rows if len(row) != 3 or not CITED_TEST.fullmatch(row[2])] == []
