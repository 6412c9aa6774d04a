"""The layout's rules, checked on the source: no import cycle in app/, the queueing layer never
imports the domain, and rq's private surface (underscore names, `rq:` keys) lives in rq_compat.py."""

from __future__ import annotations

import ast
import functools
import types
from pathlib import Path

import rq

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
QUEUEING = APP / "queueing"
COMPAT = QUEUEING / "rq_compat.py"
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


def test_the_rules_above_catch_what_they_look_for(tmp_path):
    """The checks are not vacuous: a planted cycle, a private name and a key are each found."""
    tree = ast.parse("from rq.queue import _x\nqueue._enqueue_job(job)\nkey = 'rq:queue:x'\n")
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert names & rq_private_names() == {"_enqueue_job"}
    known = {"app.a", "app.b"}
    a = imports_of("app.a", APP / "a.py", ast.parse("def f():\n    from app import b\n"), known)
    b = imports_of("app.b", APP / "b.py", ast.parse("from app.a import thing\n"), known)
    assert a == {"app.b"} and b == {"app.a"}


LIBRARIES = ("rq", "django_rq", "rq_scheduler")


def project_classes_on_library_bases() -> list[type]:
    """Every class of app.queueing (its subpackages and commands included) built on a class of
    rq, django-rq or rq-scheduler: workers, the pool, the scheduler, the job and queue classes."""
    import importlib
    import inspect
    import pkgutil

    import app.queueing

    found: dict[str, type] = {}
    for module_info in pkgutil.walk_packages(app.queueing.__path__, "app.queueing."):
        if ".migrations" in module_info.name:
            continue
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__.startswith("app.") and any(base.__module__.split(".")[0] in LIBRARIES for base in cls.__mro__):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


def library_hooks_overridden(cls: type) -> dict[str, list[str]]:
    """Each method (function, property, class or static method) of a library base of `cls` that a
    project class of its MRO defines again, with the project classes that define it, nearest first."""
    library = [base for base in cls.__mro__ if base.__module__.split(".")[0] in LIBRARIES]
    project = [base for base in cls.__mro__ if base.__module__.startswith("app.")]
    hook_names = {name for base in library for name, value in vars(base).items() if _is_method(value)}
    hooks: dict[str, list[str]] = {}
    for name in sorted(hook_names - {"__annotations__", "__dict__", "__doc__", "__module__", "__weakref__"}):
        definers = [base.__qualname__ for base in project if _is_method(vars(base).get(name))]
        if definers:
            hooks[name] = definers
    return hooks


def _is_method(value: object) -> bool:
    """A function, property, class or static method: not data such as a class attribute naming a class."""
    return isinstance(value, (types.FunctionType, property, functools.cached_property, classmethod, staticmethod))


def test_each_library_hook_is_overridden_once_per_class():
    """One override per hook: no RQ, django-rq or rq-scheduler method is defined by two project
    classes of one MRO (a stack of mixins calling each other through super() and shared flags).
    A worker's kinds differ by data and collaborators (app/queueing/worker/), not by overrides."""
    classes = project_classes_on_library_bases()
    assert {"ForkingWorker", "InProcessWorker", "RecyclingWorker", "ProjectScheduler", "QueueingJob"} <= {c.__name__ for c in classes}
    twice: list[str] = []
    for cls in classes:
        hooks = library_hooks_overridden(cls)
        print(f"{cls.__module__}.{cls.__qualname__}: " + ", ".join(f"{name} ({' > '.join(by)})" for name, by in hooks.items()))
        twice.extend(f"{cls.__qualname__}.{name}: {' > '.join(by)}" for name, by in hooks.items() if len(by) > 1)
    assert twice == [], f"{len(twice)} hooks overridden more than once:\n" + "\n".join(twice)
