"""The package's shape: no module imports another's private names, no import cycle, short functions."""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "dcgan_tf"
LONGEST = 60  # lines; train() alone, the orchestrator, may be longer
ALLOWED_LONG = {("training", "train")}


def parsed_modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text()) for path in sorted(PACKAGE.glob("*.py"))}


def imports(tree: ast.Module) -> list[tuple[str, str]]:
    """(module, name) for every `from dcgan_tf[.module] import name`, at any depth (function-level too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dcgan_tf":
            for alias in node.names:
                module = node.module.split(".")[1] if "." in node.module else alias.name
                found.append((module, alias.name))
    return found


def test_no_module_imports_private_names():
    private = [(mod, target, name) for mod, tree in parsed_modules().items() for target, name in imports(tree)
               if name.startswith("_") and target != name]
    assert not private, private


def test_no_import_cycle():
    graph = {mod: {target for target, _ in imports(tree)} for mod, tree in parsed_modules().items()}
    state: dict[str, str] = {}

    def visit(mod: str, path: list[str]) -> None:
        if state.get(mod) == "open":
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(mod):] + [mod]))
        if state.get(mod) == "done":
            return
        state[mod] = "open"
        for target in sorted(graph.get(mod, ())):
            visit(target, path + [mod])
        state[mod] = "done"

    for mod in graph:
        visit(mod, [])
    assert graph["generate"] >= {"sampling", "visualize"} and "generate" not in graph["visualize"]


def test_functions_are_short():
    long = [(mod, node.name, node.end_lineno - node.lineno + 1) for mod, tree in parsed_modules().items()
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONGEST and (mod, node.name) not in ALLOWED_LONG]
    assert not long, long
