"""The layout's rules, checked on the source: no import cycle in app/, the queueing layer never
imports the domain, the private surface of rq and of the libraries around it (underscore
names, `rq:` keys) lives in the compatibility gate, the package app/queueing/rq_compat/, and
the project's own Redis keys (`egoejo:`) are spelt in the two keys modules alone."""

from __future__ import annotations

import ast
import functools
import importlib.util
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
QUEUEING = APP / "queueing"
COMPAT = QUEUEING / "rq_compat"
# The libraries whose private names only the gate may touch, by import name.
GATED_LIBRARIES = ("rq", "rq_scheduler", "redis", "rq_dashboard", "django_rq")
# Attribute names a gated library defines that a module outside the gate uses for another library's
# object: (path, name) -> whose name it is there.
NOT_THEIRS = {("app/s3_media_storage.py", "_connections"): "django-storages' S3Storage._connections (its clients per thread)"}
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


def private_names(library: str) -> set[str]:
    """Every single-underscore name `library` itself defines: methods, functions, classes, attributes
    it assigns (`self._x = ...`), module and class globals — not names of other libraries it merely uses."""
    spec = importlib.util.find_spec(library)  # found, not imported: django_rq needs settings to import
    assert spec is not None and spec.origin is not None, library
    names: set[str] = set()
    for path in Path(spec.origin).parent.rglob("*.py"):
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


# RQ's class attributes that spell its keys: as much the gate's as an `rq:` literal.
RQ_KEY_ATTRIBUTES = {"redis_queue_namespace_prefix", "redis_queues_keys", "redis_job_namespace_prefix", "redis_worker_namespace_prefix", "redis_workers_keys"}


def gated_private_names() -> set[str]:
    return set().union(*(private_names(library) for library in GATED_LIBRARIES)) | RQ_KEY_ATTRIBUTES


def gate_offenders(tree: ast.Module, private: set[str], label: str = "", allowed: frozenset[str] = frozenset()) -> list[str]:
    """What in `tree` only the gate may write: a private attribute (also by getattr/setattr/hasattr/delattr
    with its name), a private method or class attribute overridden in a class, an underscore name
    imported from a gated library, an `rq:` key."""
    offenders: list[str] = []
    for node in ast.walk(tree):
        where = f"{label}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and node.attr in private and node.attr not in allowed:
            offenders.append(f"{where} .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private
            and node.args[1].value not in allowed
        ):
            offenders.append(f"{where} {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.ClassDef):  # a subclass overriding a private method or class attribute
            for item in node.body:
                defined = [item.name] if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) else []
                if isinstance(item, (ast.Assign, ast.AnnAssign)):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    defined = [t.id for t in targets if isinstance(t, ast.Name)]
                offenders.extend(f"{label}:{item.lineno} {node.name}.{name}" for name in defined if name in private and name not in allowed)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in GATED_LIBRARIES:
            offenders.extend(f"{where} import {alias.name}" for alias in node.names if alias.name.startswith("_"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("rq:"):
            offenders.append(f"{where} {node.value!r}")
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) and str(node.values[0].value).startswith("rq:"):
            offenders.append(f"{where} f-string key")
    return offenders


def test_third_party_private_names_and_keys_appear_only_in_the_gate():
    private = gated_private_names()
    # the check has teeth: rq's, rq-scheduler's, redis-py's own privates are in it
    assert {"_enqueue_job", "_prepare_for_queue", "_stop_requested", "_status", "_interval", "_lock_acquired", "_sock"} <= private
    import rq

    assert all(hasattr(rq.Queue, name) or hasattr(rq.Worker, name) or hasattr(rq.job.Job, name) for name in RQ_KEY_ATTRIBUTES)
    offenders: list[str] = []
    for path in APP.rglob("*.py"):
        if COMPAT in path.parents or "migrations" in path.parts:
            continue
        label = str(path.relative_to(ROOT))
        allowed = frozenset(name for (where, name) in NOT_THEIRS if where == label)
        offenders.extend(gate_offenders(ast.parse(path.read_text()), private, label, allowed))
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
    """The checks are not vacuous: a planted cycle, each gated library's private names and keys are each found."""
    planted = ast.parse(
        "from rq.queue import _x\n"
        "queue._enqueue_job(job)\n"
        "key = 'rq:queue:x'\n"
        "from rq_scheduler.scheduler import _y\n"
        "scheduler._interval\n"
        "scheduler._lock_acquired = True\n"
        "getattr(pool, '_available_connections', [])\n"
        "key = f'rq:wip:{name}'\n"
        "from rq_dashboard.app import _normalize_prefix\n"
        "django_rq.queues._thread_data\n"
        "storage._connections\n"
        "class Mine(Scheduler):\n"
        "    _queue = None\n"
        "    def _install_signal_handlers(self): ...\n"
    )
    found = gate_offenders(planted, gated_private_names(), "planted", frozenset({"_connections"}))
    assert sorted(found) == sorted([
        "planted:1 import _x",
        "planted:2 ._enqueue_job",
        "planted:3 'rq:queue:x'",
        "planted:4 import _y",
        "planted:5 ._interval",
        "planted:6 ._lock_acquired",
        "planted:7 getattr(..., '_available_connections')",
        "planted:8 'rq:wip:'",  # the f-string's text, then the f-string
        "planted:8 f-string key",
        "planted:9 import _normalize_prefix",
        "planted:10 ._thread_data",
        "planted:13 Mine._queue",
        "planted:14 Mine._install_signal_handlers",
    ])
    assert gate_offenders(ast.parse("storage._connections\n"), gated_private_names()) == [":1 ._connections"]  # allowed only where named
    assert gate_offenders(ast.parse("Queue.redis_queues_keys\n"), gated_private_names()) == [":1 .redis_queues_keys"]  # a key by attribute
    planted_keys = ast.parse("a = 'egoejo:x'\nb = f'egoejo:{job_id}'\nc = 'not egoejo:x'\nd = f'{x}egoejo:'\n")
    assert key_literals(planted_keys, "egoejo:") == [1, 2, 4]
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
