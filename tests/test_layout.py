"""The layers hold: the library never imports doit, and no project module imports itself back
through others (an import circle)."""
import ast
import json
import os
import subprocess
import sys


from tests.support import CHECKOUT

LIBRARY = "gentoo_zfs_livecd"
DOIT_LAYER = "tasks"

# Imports every module of a package in a fresh interpreter, in walk order, and names the first
# one after which `doit` is loaded (a module loads doit itself or through what it imports).
IMPORT_ALL = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
imported, culprit = [], None
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(module.name)
    imported.append(module.name)
    if culprit is None and "doit" in sys.modules:
        culprit = module.name
print(json.dumps({"imported": imported, "doit_loaded_by": culprit, "doit": "doit" in sys.modules}))
"""


def import_every_module(package: str) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL, package], cwd=CHECKOUT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_library_module_imports_doit():
    found = import_every_module(LIBRARY)
    assert f"{LIBRARY}.catalyst.grammar" in found["imported"]
    assert f"{LIBRARY}.rehearsal.emulator" in found["imported"]
    assert not found["doit"], f"importing {found['doit_loaded_by']} loads doit"


def test_the_doit_check_sees_doit():
    """The check above can fail: the doit layer does load doit."""
    found = import_every_module(DOIT_LAYER)
    assert found["doit"] and found["doit_loaded_by"].startswith(f"{DOIT_LAYER}.")


def module_name(path) -> str:
    parts = list(path.relative_to(CHECKOUT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict:
    """Module name -> source file, for the library and the doit layer."""
    return {module_name(path): path for top in (LIBRARY, DOIT_LAYER)
            for path in sorted((CHECKOUT / top).rglob("*.py"))}


def imported_modules(name: str, path, known) -> set:
    """Project modules `name` imports anywhere in its file, inside functions too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                         for alias in node.names)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict:
    known = project_modules()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def import_circles(graph: dict) -> list:
    """One circle (a list of modules, first repeated at the end) for each group of modules
    that import each other (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = set()
            while module not in group:
                group.add(stack.pop())
            on_stack.difference_update(group)
            if len(group) > 1:
                circles.append(circle_within(graph, group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def circle_within(graph: dict, group: set) -> list:
    """A path from the group's first module back to itself, through the group only."""
    start = min(group)
    paths = {start: [start]}
    todo = [start]
    while todo:
        module = todo.pop(0)
        for other in sorted(graph[module] & group):
            if other == start:
                return paths[module] + [start]
            if other not in paths:
                paths[other] = paths[module] + [other]
                todo.append(other)
    raise AssertionError(f"no circle through {start} in {sorted(group)}")


def describe(circles) -> str:
    return "import circles:\n" + "\n".join(" -> ".join(circle) for circle in circles)


def test_no_import_circles():
    graph = import_graph()
    assert f"{LIBRARY}.catalyst.grammar" in graph and f"{DOIT_LAYER}.doit_glue.context" in graph
    circles = import_circles(graph)
    assert circles == [], describe(circles)


def test_circles_are_found_through_function_level_imports(tmp_path):
    """The check above can fail: an import inside a function counts, and a circle is named."""
    known = {"pkg": None, "pkg.a": None, "pkg.b": None}
    module = tmp_path / "b.py"
    module.write_text("import os\n\ndef later():\n    from pkg import a\n    return a\n")
    assert imported_modules("pkg.b", module, known) == {"pkg.a"}
    module.write_text("from . import a\nfrom .a import thing\n")
    assert imported_modules("pkg.b", module, known) == {"pkg.a"}
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []
