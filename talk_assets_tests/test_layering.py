"""The layering of issue 13, read from the source: no import cycles between modules; the engine
(`talk_assets/sync/`) never imports a system's module; a system imports only the model, the
conversions and the writer base of the engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "talk_assets"
ENGINE_FOR_SYSTEMS = {"talk_assets.sync", "talk_assets.sync.model", "talk_assets.sync.conversions", "talk_assets.sync.writer"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported when the module loads (not inside functions or `if TYPE_CHECKING:`)."""
    out: set[str] = set()
    tree = ast.parse(path.read_text())

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(tree.body)
    return out


def _graph() -> dict[str, set[str]]:
    mods = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = {d for d in _top_level_imports(path) if d in mods and d != name}
        # importing a.b.c loads the packages a and a.b first
        graph[name] = deps | {".".join(d.split(".")[:i]) for d in deps for i in range(2, d.count(".") + 1)} - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles() -> None:
    graph = {k: {d for d in v if d != "talk_assets"} for k, v in _graph().items()}
    assert _cycles(graph) == []


def test_the_engine_imports_no_system_module() -> None:
    graph = _graph()
    bad = {m: sorted(d for d in deps if d.startswith("talk_assets.systems."))
           for m, deps in graph.items() if m.startswith("talk_assets.sync")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_systems_import_only_the_model_and_the_writer_base() -> None:
    graph = _graph()
    bad = {m: sorted(d for d in deps if d.startswith("talk_assets.sync") and d not in ENGINE_FOR_SYSTEMS
                     and not any(d.startswith(e + ".") for e in ENGINE_FOR_SYSTEMS))
           for m, deps in graph.items() if m.startswith("talk_assets.systems.")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_every_system_module_imports_alone() -> None:
    """A system's client, writer and sandbox load on their own (no order of imports hides a cycle)."""
    mods = sorted(_module(p) for p in (PACKAGE / "systems").rglob("*.py"))
    mods += ["talk_assets.sync.declaration", "talk_assets.sync.push", "talk_assets.config", "talk_assets.settings"]
    code = ("import importlib, subprocess, sys\n"
            "bad = [m for m in sys.argv[1:] if subprocess.run([sys.executable, '-c', f'import {m}']).returncode]\n"
            "print(bad)")
    proc = subprocess.run([sys.executable, "-c", code, *mods], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.stdout.strip() == "[]", proc.stderr[-3000:]


def test_every_registered_system_is_complete() -> None:
    """Each `System` carries a client implementing the protocol, a writer, a sandbox app and a resource
    whose fields are the system's settings; its views read only its own sources."""
    from talk_assets.sandbox.server import SandboxApp
    from talk_assets.sync.model import SystemClient
    from talk_assets.sync.writer import Writer
    from talk_assets.systems import systems

    found = systems()
    assert list(found)[:5] == ["shopify", "poweroffice", "squarespace", "customcrm", "customwebshop"]
    for key, s in found.items():
        client = s.client.from_env()
        try:
            assert isinstance(client, SystemClient), key
            assert client.system == key
            assert {src.entity for src in s.sources} <= set(client.entities), key
        finally:
            client.close()
        assert issubclass(s.writer, Writer) and issubclass(s.sandbox, SandboxApp), key
        assert set(s.resource.model_fields) == {"url", *s.settings}, key
