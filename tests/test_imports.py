"""The architecture in the imports: no module imports (directly or through others) one that
imports it back, lazily inside a function or not, and the layers only import downwards."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinymtl"

# bottom to top (README "How it is built"); a module may import its own layer or lower ones
# (report, plots and tables, reads results: the run protocols use it to write theirs)
LAYERS = ["errors", "options", "files", "backend", "autograd", "nn", "optim", "graph", "datasets",
          "mtl", "train", "report", "runs", "cli"]


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports():
    """{module: set of tinymtl modules it imports}, every import statement counted."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("tinymtl")}
            elif isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("tinymtl"):
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    targets.add(child if child in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph):
    """One cycle through each strongly connected group of modules (Tarjan), as lists."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tinymtl"


def test_no_import_cycles():
    assert cycles(imports()) == []


def test_layers_import_only_downwards():
    upward = []
    for module, targets in imports().items():
        if layer(module) not in LAYERS:
            continue
        for target in targets:
            if layer(target) in LAYERS and LAYERS.index(layer(target)) > LAYERS.index(
                    layer(module)):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_a_script_next_to_a_clone_imports_the_package_not_the_clone_folder(tmp_path):
    """A clone named "tinymtl" has no __init__.py at its root, so to Python it is a namespace
    package. A script in the clone's parent folder must still import the installed package
    (issue #21): the editable install puts the clone on sys.path (pyproject's package-dir), where
    the real package is found before any namespace portion is settled for."""
    import subprocess
    import sys

    (tmp_path / "tinymtl" / "docs").mkdir(parents=True)  # what a clone's root looks like
    script = tmp_path / "script.py"
    script.write_text("import tinymtl\nfrom tinymtl import Trainer\nprint(tinymtl.__file__)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert pathlib.Path(done.stdout.strip()) == PACKAGE / "__init__.py"
