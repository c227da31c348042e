"""The import contract: no import cycle, no import across the layers the wrong way, no long function.

Every ``import`` of every module under ``radlabel/``, ``connectors/`` and ``ml_backend/`` counts, at
module level and inside functions alike (an import inside a function still ties the two modules
together; it only hides the tie until run time).

The layers, top to bottom. A module may import its own layer and the layers its row allows:

=========  ===========================================================  ===========================
layer      modules                                                      may import
=========  ===========================================================  ===========================
entry      the CLI and demo, the servers (hooks, viewer front, ML        every layer
           backend's Flask app), the job workers' handler registry
stages     the rest of ``connectors/``: provision, sync, SEG import,     adapters, domain
           adjudicate, QA desk, campaign, export, readers, viewer API
ml         the rest of ``ml_backend/``: models, pre-labels, trainer     adapters, domain
adapters   how the outside systems are reached: Orthanc/DICOMweb,       domain
           Label Studio, the state database and its tables, the job
           queue, the local stack, the servers' shared names
domain     ``radlabel/``: protocols, ingest, adjudication, QA, DICOM    nothing of the above
=========  ===========================================================  ===========================

``stages`` and ``ml`` are side by side: the pipeline never imports the ML backend and the ML backend
never imports a pipeline stage (both reach Label Studio and Orthanc through the adapters).

Known violations are listed below with what removes them; the lists may only shrink (an entry that no
longer happens fails :func:`test_allow_lists_name_only_live_violations`). No cycle and no wrong-way
import is left.
Run ``python tests/unit/test_architecture.py`` to print the graph's cycles and wrong-way imports.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("radlabel", "connectors", "ml_backend")
MAX_FUNCTION_LINES = 60

# The entry layer: the command line and the demo (in the radlabel package, where the console script and
# `python -m radlabel.cli` name them: the only radlabel modules that may reach connectors and the ML backend),
# the three servers and the job workers' handler registry. The README's layer table names each one.
ENTRY = {"radlabel.cli", "radlabel.demo", "connectors.hooks.app", "connectors.viewer.app", "ml_backend.app",
         "connectors.job_handlers"}
ADAPTERS = {"connectors.database", "connectors.state", "connectors.dicomweb", "connectors.label_studio",
            "connectors.label_studio_accounts", "connectors.jobs", "connectors.stack", "connectors.stack.install",
            "connectors.stack.process", "connectors.stack.services", "connectors.stack.orthanc_access",
            "connectors.service_auth", "connectors.projects", "connectors.adjudications", "connectors.task_index",
            "connectors.ports", "connectors.wiring", "connectors.qa_records"}
MAY_IMPORT = {"entry": {"entry", "stages", "ml", "adapters", "domain"},
              "stages": {"stages", "adapters", "domain"},
              "ml": {"ml", "adapters", "domain"},
              "adapters": {"adapters", "domain"},
              "domain": {"domain"}}

# Imports that close a cycle today (importer, imported), and the step that removes each (none left).
KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {}
# Imports across the layers the wrong way today (importer, imported), and the step that removes each (none left).
KNOWN_WRONG_WAY: dict[tuple[str, str], str] = {}
# What builds an adapter from settings (a client of Orthanc, Label Studio, the state database or the job queue):
# only the adapters layer calls these (``connectors.wiring`` for everyone else), and any ``X.from_settings(...)``.
ADAPTER_CONSTRUCTORS = {"connectors.label_studio.client", "connectors.database.state_database",
                        "connectors.dicomweb.OrthancDicomWeb", "connectors.jobs.RQQueue",
                        "connectors.jobs.InProcessQueue", "connectors.jobs.JobStore"}
ADAPTER_CONSTRUCTOR_METHODS = {"from_settings", "source_pacs", "pacs_loader"}
# Modules outside the adapters layer that build an adapter today, and what removes each (none left).
KNOWN_ADAPTER_BUILDERS: dict[str, str] = {}
# Functions over MAX_FUNCTION_LINES lines today (module:qualified name), and what shortens each (none left).
KNOWN_LONG_FUNCTIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def modules(root: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours a dotted name lives in (``a.b.c`` -> ``a.b`` when ``c`` is a name in it)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import of one module of ours by ``name``, wherever in the file it stands."""
    found = []
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [_owner(alias.name, known) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else _owner(base, known)
                       for alias in node.names]
        else:
            continue
        found += [Import(name, target, node.lineno) for target in targets if target and target != name]
    return found


def import_graph(root: Path = REPO) -> dict[str, dict[str, int]]:
    """importer -> {imported: first line}."""
    known = modules(root)
    graph: dict[str, dict[str, int]] = {name: {} for name in known}
    for name, path in known.items():
        for found in imports_of(name, path, known):
            graph[name].setdefault(found.imported, found.line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def layer(module: str) -> str:
    if module in ENTRY:
        return "entry"
    if module in ADAPTERS:
        return "adapters"
    return {"radlabel": "domain", "connectors": "stages", "ml_backend": "ml"}[module.split(".")[0]]


def wrong_way(graph: dict[str, dict[str, int]]) -> dict[tuple[str, str], int]:
    """(importer, imported) -> line, for each import its layer does not allow."""
    return {(importer, imported): line for importer, targets in graph.items() for imported, line in targets.items()
            if layer(imported) not in MAY_IMPORT[layer(importer)]}


def without(graph: dict[str, dict[str, int]], edges) -> dict[str, dict[str, int]]:
    return {importer: {imported: line for imported, line in targets.items() if (importer, imported) not in edges}
            for importer, targets in graph.items()}


def long_functions(root: Path = REPO) -> dict[str, int]:
    """module:qualified name -> lines, for each function (or method) longer than MAX_FUNCTION_LINES."""
    found = {}
    for name, path in modules(root).items():
        def visit(node, prefix=""):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    qualified = prefix + child.name
                    if not isinstance(child, ast.ClassDef):
                        first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                        if child.end_lineno - first + 1 > MAX_FUNCTION_LINES:
                            found[f"{name}:{qualified}"] = child.end_lineno - first + 1
                    visit(child, qualified + ".")
        visit(ast.parse(path.read_text(), str(path)))
    return found


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name, for every ``import``/``from … import`` of a module (absolute names only)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})
        elif isinstance(node, ast.Import):
            names.update({alias.asname or alias.name.partition(".")[0]:
                          alias.name if alias.asname else alias.name.partition(".")[0] for alias in node.names})
    return names


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """The dotted name a call's function stands for (``ls_client`` -> ``connectors.label_studio.client``)."""
    if isinstance(node, ast.Name):
        return names.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return f"{base}.{node.attr}" if base else node.attr
    return None


def adapter_builders(root: Path = REPO) -> dict[str, list[str]]:
    """module -> the adapter constructors it calls (lines), for each module outside the adapters layer."""
    found: dict[str, list[str]] = {}
    for name, path in modules(root).items():
        if layer(name) == "adapters":
            continue
        tree = ast.parse(path.read_text(), str(path))
        names = _imported_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = _dotted(node.func, names) or ""
            if called in ADAPTER_CONSTRUCTORS or called.rpartition(".")[2] in ADAPTER_CONSTRUCTOR_METHODS:
                found.setdefault(name, []).append(f"{called} (line {node.lineno})")
    return found


# -- the contract ----------------------------------------------------------------------------------------------
def test_no_import_cycle_beyond_the_known_ones():
    remaining = cycles(without(import_graph(), KNOWN_CYCLE_EDGES))
    assert not remaining, f"import cycle(s): {remaining} (break them: a module of shared names, or a port passed in)"


def test_no_import_across_the_layers_the_wrong_way():
    new = {edge: line for edge, line in wrong_way(import_graph()).items() if edge not in KNOWN_WRONG_WAY}
    assert not new, "imports against the layers (see this file's docstring): " + ", ".join(
        f"{a} -> {b} (line {line})" for (a, b), line in sorted(new.items()))


def test_the_domain_imports_neither_connectors_nor_the_ml_backend():
    graph = import_graph()
    offending = {(a, b) for a, targets in graph.items() for b in targets
                 if layer(a) == "domain" and b.split(".")[0] in ("connectors", "ml_backend")}
    assert not offending, f"only the entry points (ENTRY) of the radlabel package reach the other packages: {offending}"


def test_the_entry_points_are_the_console_script_and_the_readmes_entry_layer():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'radlabel = "radlabel.cli:main"' in pyproject
    table = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| entry |"))
    named = {module.replace("/", ".").removesuffix(".py") for module in re.findall(r"`([\w/]+\.py)`", table)}
    assert named == ENTRY, f"the README's entry row names {sorted(named)}, the contract {sorted(ENTRY)}"


def test_no_function_over_60_lines_beyond_the_known_ones():
    new = {name: lines for name, lines in long_functions().items() if name not in KNOWN_LONG_FUNCTIONS}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (split them): {new}"


def test_only_the_adapters_layer_builds_adapters():
    new = {name: calls for name, calls in adapter_builders().items() if name not in KNOWN_ADAPTER_BUILDERS}
    assert not new, f"modules building their own adapters (take them from connectors.wiring.Adapters): {new}"


def packages_without_a_public_surface(root: Path = REPO) -> dict[str, str]:
    """Package -> what is wrong with its ``__all__``: each package's ``__init__`` lists its public surface, and every
    name listed is defined there or is one of its modules."""
    found = {}
    for init in sorted(p for package in PACKAGES for p in (root / package).rglob("__init__.py")):
        package = ".".join(init.parent.relative_to(root).parts)
        tree = ast.parse(init.read_text())
        listed = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
        if not listed:
            found[package] = "no __all__"
            continue
        defined = set(_imported_names(tree)) | {t.id for node in tree.body if isinstance(node, ast.Assign)
                                                for t in node.targets if isinstance(t, ast.Name)}
        defined |= {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        modules_here = {p.stem for p in init.parent.glob("*.py")} | {p.name for p in init.parent.iterdir()
                                                                     if (p / "__init__.py").exists()}
        unknown = sorted(set(listed[0]) - defined - modules_here)
        if unknown:
            found[package] = "lists what it does not have: " + ", ".join(unknown)
    return found


def test_every_package_declares_its_public_surface():
    assert packages_without_a_public_surface() == {}


def test_a_package_without_all_or_listing_a_missing_name_is_found(tmp_path):
    root = _tree(tmp_path, {"radlabel/__init__.py": "__all__ = ['geometry', 'missing']\n",
                            "radlabel/geometry.py": "", "connectors/__init__.py": "",
                            "ml_backend/__init__.py": "from ml_backend.model import Model\n__all__ = ['Model']\n",
                            "ml_backend/model.py": "class Model: ...\n"})
    assert packages_without_a_public_surface(root) == {"radlabel": "lists what it does not have: missing",
                                                        "connectors": "no __all__"}


def test_allow_lists_name_only_live_violations():
    graph = import_graph()
    edges = {(a, b) for a, targets in graph.items() for b in targets}
    gone = set(KNOWN_CYCLE_EDGES) - edges
    assert not gone, f"{gone} are gone: remove them from KNOWN_CYCLE_EDGES"
    gone = set(KNOWN_WRONG_WAY) - set(wrong_way(graph))
    assert not gone, f"{gone} are gone or allowed now: remove them from KNOWN_WRONG_WAY"
    gone = set(KNOWN_ADAPTER_BUILDERS) - set(adapter_builders())
    assert not gone, f"{gone} no longer build adapters: remove them from KNOWN_ADAPTER_BUILDERS"
    short = set(KNOWN_LONG_FUNCTIONS) - set(long_functions())
    assert not short, f"{short} are short now: remove them from KNOWN_LONG_FUNCTIONS"
    for module in ENTRY:
        assert module in graph, f"{module} moved: rename it in ENTRY"
    # Each known cycle edge still lies on a cycle (else it is only an import, and belongs to no list).
    on_cycles = cycles(graph)
    for edge in KNOWN_CYCLE_EDGES:
        assert any(set(edge) <= set(c) for c in on_cycles), f"{edge} is on no cycle now: remove it from KNOWN_CYCLE_EDGES"


# -- the checks check ----------------------------------------------------------------------------------------------
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return tmp_path


def test_an_injected_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    root = _tree(tmp_path, {
        "connectors/a.py": "from connectors.b import thing\n",
        "connectors/b.py": "def thing():\n    from connectors import a\n    return a\n",
        "connectors/c.py": "import connectors.a\n",
    })
    assert cycles(import_graph(root)) == [["connectors.a", "connectors.b"]]


def test_relative_imports_and_imported_submodules_are_resolved(tmp_path):
    root = _tree(tmp_path, {
        "connectors/viewer/__init__.py": "from . import api\n",
        "connectors/viewer/api.py": "from ..database import connect\nfrom connectors.viewer import outbox\n",
        "connectors/viewer/outbox.py": "",
        "connectors/database.py": "",
    })
    graph = import_graph(root)
    assert graph["connectors.viewer"] == {"connectors.viewer.api": 1}
    assert graph["connectors.viewer.api"] == {"connectors.database": 1, "connectors.viewer.outbox": 2}


def test_an_injected_wrong_way_import_is_found(tmp_path):
    root = _tree(tmp_path, {
        "radlabel/seg.py": "def f():\n    import connectors.sync\n",
        "connectors/sync.py": "",
        "connectors/label_studio.py": "from connectors.sync import x\n",
        "ml_backend/trainer.py": "from connectors.label_studio import client\nfrom connectors import sync\n",
    })
    assert set(wrong_way(import_graph(root))) == {("radlabel.seg", "connectors.sync"),
                                                 ("connectors.label_studio", "connectors.sync"),
                                                 ("ml_backend.trainer", "connectors.sync")}


def test_an_adapter_built_outside_the_adapters_layer_is_found(tmp_path):
    root = _tree(tmp_path, {
        "connectors/dicomweb.py": "class OrthancDicomWeb:\n    pass\n",
        "connectors/label_studio.py": "def client(settings):\n    return settings\n",
        "connectors/wiring.py": "from connectors.label_studio import client\nls = client(1)\n",
        "connectors/sync.py": "from connectors.label_studio import client as ls_client\nls = ls_client(1)\n",
        "connectors/copies.py": "from connectors import dicomweb\narchive = dicomweb.OrthancDicomWeb.pacs_loader(1)\n",
        "ml_backend/volumes.py": "def f(settings):\n    from connectors.readers import ReaderRegistry\n"
                                 "    return ReaderRegistry.from_settings(settings)\n",
        "radlabel/cli.py": "import connectors.label_studio\nconnectors.label_studio.client(2)\n",
    })
    assert adapter_builders(root) == {
        "connectors.sync": ["connectors.label_studio.client (line 2)"],
        "connectors.copies": ["connectors.dicomweb.OrthancDicomWeb.pacs_loader (line 2)"],
        "ml_backend.volumes": ["connectors.readers.ReaderRegistry.from_settings (line 3)"],
        "radlabel.cli": ["connectors.label_studio.client (line 2)"]}


def test_a_long_function_is_found_with_its_decorators(tmp_path):
    def body(lines: int, indent: str) -> str:
        return "".join(f"{indent}x{i} = {i}\n" for i in range(lines))

    root = _tree(tmp_path, {"radlabel/long.py": f"class A:\n    @staticmethod\n    def f():\n{body(MAX_FUNCTION_LINES - 1, ' ' * 8)}"
                                                f"\n\ndef short():\n{body(MAX_FUNCTION_LINES - 1, '    ')}"})
    assert long_functions(root) == {"radlabel.long:A.f": MAX_FUNCTION_LINES + 1}


if __name__ == "__main__":  # a report for people: what the lists hold and what is new
    whole = import_graph(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO)
    print("cycles:", *cycles(whole), sep="\n  ")
    print("wrong-way imports:", *(f"{a} -> {b} (line {line})" for (a, b), line in sorted(wrong_way(whole).items())),
          sep="\n  ")
    print("adapter builders:", *(f"{n}: {', '.join(calls)}" for n, calls in sorted(adapter_builders().items())),
          sep="\n  ")
    print("long functions:", *(f"{n} ({lines})" for n, lines in sorted(long_functions().items())), sep="\n  ")
