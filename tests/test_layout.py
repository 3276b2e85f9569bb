"""The package's layout: no module imports, directly or through others, a module that imports it back."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lerobot_policy_reconvla"


def _modules(package: Path) -> dict[str, Path]:
    """Every module of `package` by dotted name (a subpackage by its own name, for its __init__.py)."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` imports by name, anywhere in it (at the top or in a
    function), absolute or relative: `from X import Y` imports X.Y if that is a module, else X."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {module for module in found if module in modules and module != name}


def import_graph(package: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports by name.

    A package's __init__ also runs before any of its modules, but that is not counted: the root's
    registers every part with LeRobot, so every module would otherwise import itself through it.
    """
    modules = _modules(package)
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> list[str] | None:
        if module in trail:
            return trail[trail.index(module) :] + [module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported, [*trail, module])
            if cycle:
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module, [])
        if cycle:
            return cycle
    return None


def test_no_module_of_the_package_is_in_an_import_cycle():
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and PACKAGE.name in graph  # every module, the root's too
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"
    # The LeRobot env config is built on the simulation, not the reverse.
    assert _imported_from(graph, "envs") <= {"sim"} and "envs" not in _imported_from(graph, "sim")


def _imported_from(graph: dict[str, set[str]], subpackage: str) -> set[str]:
    """The package's other top-level parts that the modules of `subpackage` import."""
    inside = f"{PACKAGE.name}.{subpackage}"
    parts = {
        imported.split(".")[1] if "." in imported else ""
        for module, modules in graph.items()
        if module == inside or module.startswith(f"{inside}.")
        for imported in modules
    }
    return parts - {subpackage}


def test_a_planted_cycle_is_found_through_relative_absolute_and_function_level_imports(tmp_path):
    package = tmp_path / "planted"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import thing\n")
    (package / "a.py").write_text("from .sub import b\nthing = 1\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def later():\n    import planted.sub.c\n")
    (package / "sub" / "c.py").write_text("def later():\n    from ..a import thing\n")
    graph = import_graph(package)
    assert graph["planted"] == {"planted.a"}  # `thing` is a name in planted.a, not a module
    assert find_cycle(graph) == ["planted.a", "planted.sub.b", "planted.sub.c", "planted.a"]

    # The same cycle, in another spelling.
    (package / "sub" / "c.py").write_text("def later():\n    from .. import a\n")
    assert find_cycle(import_graph(package)) == ["planted.a", "planted.sub.b", "planted.sub.c", "planted.a"]
    (package / "sub" / "c.py").write_text("")
    assert find_cycle(import_graph(package)) is None


def test_the_package_root_holds_only_the_policy_and_its_own_helpers():
    expected = [
        "__init__.py",
        "configuration_reconvla.py",
        "configuration_reconvla_pi05.py",
        "gaze_box.py",
        "loading.py",
        "modeling_reconvla.py",
        "modeling_reconvla_pi05.py",
        "processor_reconvla.py",
        "processor_reconvla_pi05.py",
        "recon_branch.py",
        "tiny.py",
    ]
    assert sorted(path.name for path in PACKAGE.glob("*.py")) == expected


def test_shared_plumbing_and_the_recon_branch_import_nothing_else_of_the_package():
    graph = import_graph(PACKAGE)
    assert _imported_from(graph, "common") == set()
    assert _imported_from(graph, "recon") == set()  # so it knows nothing of pi0 either


def test_nothing_patches_or_inspects_lerobot_at_runtime():
    suspicious = ("unittest.mock", "mock.patch", "sys._getframe", "inspect.currentframe", "inspect.stack")
    found = sorted(
        f"{path.relative_to(PACKAGE).as_posix()}: {word}"
        for path in PACKAGE.rglob("*.py")
        for word in suspicious
        if word in path.read_text()
    )
    assert found == []
