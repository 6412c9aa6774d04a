"""The layout's rules, checked on the source: no import cycle in app/, the queueing layer never
imports the domain, rq's private surface (underscore names, `rq:` keys) lives in rq_compat.py, and
the project's own Redis keys (`egoejo:`) are spelt in the two keys modules alone."""

from __future__ import annotations

import ast
from pathlib import Path

import rq

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
QUEUEING = APP / "queueing"
COMPAT = QUEUEING / "rq_compat.py"
# The queueing layer's keys, and the domain's (the layer never names its users' keys).
KEY_MODULES = (QUEUEING / "keys.py", APP / "services" / "redis_keys.py")
DOMAIN = ("app.models", "app.services", "app.jobs", "app.views")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(path): (path, ast.parse(path.read_text(), str(path))) for path in APP.rglob("*.py") if "migrations" not in path.parts}


def imports_of(name: str, path: Path, tree: ast.Module, known: set[str]) -> set[str]:
    """Every app module `name` imports, at module level or inside functions alike."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_import_cycle_anywhere_in_app():
    modules = sources()
    known = set(modules)
    graph = {name: imports_of(name, path, tree, known) for name, (path, tree) in modules.items()}
    # A package importing its own submodules (`from . import x` in __init__) is not a cycle of logic.
    graph = {name: {t for t in targets if not t.startswith(name + ".")} for name, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    assert cycles == [], f"import cycles: {cycles}"


def test_the_queueing_layer_never_imports_the_domain():
    modules = sources()
    known = set(modules)
    offenders = {
        name: sorted(t for t in imports_of(name, path, tree, known) if t.startswith(DOMAIN))
        for name, (path, tree) in modules.items()
        if name.startswith("app.queueing")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def rq_private_names() -> set[str]:
    """Every single-underscore name rq itself defines: methods, functions, classes, attributes it
    assigns (`self._x = ...`), module and class globals — not names of other libraries it merely uses."""
    names: set[str] = set()
    for path in Path(rq.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            candidates: list[str] = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                candidates.append(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for part in ast.walk(target):
                        if isinstance(part, ast.Attribute):
                            candidates.append(part.attr)
                        elif isinstance(part, ast.Name):
                            candidates.append(part.id)
            names.update(c for c in candidates if c.startswith("_") and not c.startswith("__"))
    return names


def test_rq_private_names_and_keys_appear_only_in_rq_compat():
    private = rq_private_names()
    assert {"_enqueue_job", "_prepare_for_queue", "_stop_requested", "_status"} <= private  # the check has teeth
    offenders: list[str] = []
    for path in APP.rglob("*.py"):
        if path == COMPAT or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Attribute) and node.attr in private:
                offenders.append(f"{where} .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rq"):
                offenders.extend(f"{where} import {alias.name}" for alias in node.names if alias.name.startswith("_"))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("rq:"):
                offenders.append(f"{where} {node.value!r}")
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) and str(node.values[0].value).startswith("rq:"):
                offenders.append(f"{where} f-string key")
    assert offenders == []


def key_literals(tree: ast.Module, prefix: str) -> list[int]:
    """Lines of the string literals of `tree` that start with `prefix` (an f-string's literal parts included)."""
    return sorted({node.lineno for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(prefix)})


def test_egoejo_keys_are_spelt_only_in_the_keys_modules():
    """Every key the project writes in Redis is named, with its writer, reader and TTL, in
    app/queueing/keys.py or app/services/redis_keys.py; anywhere else it is a call to them."""
    assert all(key_literals(ast.parse(path.read_text()), "egoejo:") for path in KEY_MODULES)  # the check has teeth
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in APP.rglob("*.py")
        if path not in KEY_MODULES and "migrations" not in path.parts
        for line in key_literals(ast.parse(path.read_text()), "egoejo:")
    ]
    assert offenders == []


def test_the_rules_above_catch_what_they_look_for(tmp_path):
    """The checks are not vacuous: a planted cycle, a private name and keys are each found."""
    tree = ast.parse("from rq.queue import _x\nqueue._enqueue_job(job)\nkey = 'rq:queue:x'\n")
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert names & rq_private_names() == {"_enqueue_job"}
    planted = ast.parse("a = 'egoejo:x'\nb = f'egoejo:{job_id}'\nc = 'not egoejo:x'\nd = f'{x}egoejo:'\n")
    assert key_literals(planted, "egoejo:") == [1, 2, 4]
    known = {"app.a", "app.b"}
    a = imports_of("app.a", APP / "a.py", ast.parse("def f():\n    from app import b\n"), known)
    b = imports_of("app.b", APP / "b.py", ast.parse("from app.a import thing\n"), known)
    assert a == {"app.b"} and b == {"app.a"}
