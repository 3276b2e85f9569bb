"""The package's layout: subpackages import one another without a cycle."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lerobot_policy_reconvla"


def _imported_modules(path: Path) -> set[str]:
    """Dotted names of the package's modules that `path` imports (absolute or relative, at any depth)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in names if name.startswith(f"{PACKAGE.name}.")}


def _subpackage(module: str) -> str | None:
    """The top-level subpackage of a dotted module name; None for modules at the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None


def test_subpackages_import_each_other_without_a_cycle():
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = _subpackage(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if source is None:
            continue
        for target in map(_subpackage, _imported_modules(path)):
            if target is not None and target != source:
                edges.setdefault(source, set()).add(target)
    assert edges.get("envs") == {"sim"}  # the LeRobot env config is built on the simulation, not the reverse

    def cycle_from(node, trail):
        if node in trail:
            return trail[trail.index(node):] + [node]
        for nxt in sorted(edges.get(node, ())):
            found = cycle_from(nxt, trail + [node])
            if found:
                return found
        return None

    for start in sorted(edges):
        assert cycle_from(start, []) is None, f"import cycle: {' -> '.join(cycle_from(start, []))}"


def test_the_package_root_holds_only_the_policy_and_its_own_helpers():
    root_modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert root_modules == ["__init__.py", "configuration_reconvla.py", "gaze_box.py", "loading.py",
                            "modeling_reconvla.py", "processor_reconvla.py", "tiny.py"]


def test_shared_plumbing_knows_nothing_of_the_package():
    for path in (PACKAGE / "common").rglob("*.py"):
        outside = sorted(m for m in _imported_modules(path) if _subpackage(m) != "common")
        assert not outside, f"{path.name} imports {outside}"


def test_only_tiny_rebinds_names_with_mock():
    patching = sorted(
        path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
        if "unittest.mock" in path.read_text() or "mock.patch" in path.read_text()
    )
    assert patching == ["tiny.py"]
