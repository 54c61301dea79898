"""The package's import graph stays a layered DAG: no import loop, no arrow from a lower layer to a
higher one, and task modules that do not import each other (only the Prefect wrappers import them
all). Imports inside functions count too."""

import ast
from pathlib import Path

import faceveil

PACKAGE = Path(faceveil.__file__).parent
# lowest first; a module may import its own layer or a lower one
LAYERS = [
    {"__init__", "version", "hashing", "offline", "home", "atomic"},  # the package root only names the version
    {"models"},
    {"storage"},
    {"validation"},
    {"config", "config_file", "resolved_settings", "settings_parts"},
    {"pipeline"},
    {"tasks"},
    {"ops", "review"},
    {"flows", "progress"},
    {"cli", "api", "sample", "__main__"},  # __main__: `python -m faceveil`, the cli
]


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("faceveil",) + parts)
        out[name.removesuffix(".__init__") if parts != ("__init__",) else "faceveil"] = p
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            edges[name] |= {t for t in targets if t in mods and t != name}
    return edges


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: not in any layer of tests/test_layers.py; add its folder to LAYERS")


def test_every_module_has_a_layer_and_no_arrow_points_up():
    up = [f"{a} -> {b}" for a, bs in _graph().items() for b in bs if _layer(b) > _layer(a)]
    assert not up, "imports from a lower layer to a higher one:\n" + "\n".join(sorted(up))


def test_no_import_loop():
    edges, state, loops = _graph(), {}, []

    def visit(m, path):
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                loops.append(" -> ".join(path[path.index(n) :] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not loops, "import loops:\n" + "\n".join(loops)


def test_task_modules_do_not_import_each_other():
    tasks = {m for m in _modules() if m.startswith("faceveil.tasks.")}
    crossing = [
        f"{a} -> {b}"
        for a, bs in _graph().items()
        if a in tasks and a != "faceveil.tasks.wrappers"
        for b in bs
        if b in tasks
    ]
    assert not crossing, "task modules importing task modules:\n" + "\n".join(sorted(crossing))


def test_the_checker_sees_a_loop_and_an_upward_arrow(tmp_path, monkeypatch):
    """The checks above can fail: a fake package with a loop and a models -> flows import."""
    pkg = tmp_path / "faceveil"
    (pkg / "models").mkdir(parents=True)
    (pkg / "flows").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "flows" / "__init__.py").write_text("")
    (pkg / "models" / "a.py").write_text("from faceveil.models import b\nfrom faceveil.flows import run\n")
    (pkg / "models" / "b.py").write_text("def f():\n    from faceveil.models.a import x\n")
    (pkg / "flows" / "run.py").write_text("")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    edges = _graph()
    assert "faceveil.flows.run" in edges["faceveil.models.a"] and "faceveil.models.a" in edges["faceveil.models.b"]
    import pytest

    with pytest.raises(AssertionError, match="faceveil.models.a -> faceveil.flows.run"):
        test_every_module_has_a_layer_and_no_arrow_points_up()
    with pytest.raises(AssertionError, match="import loops"):
        test_no_import_loop()


def test_long_modules_and_functions_say_why():
    """No module over 300 lines and no function over 60 lines, unless the module's docstring gives the
    reason (it mentions "300 lines", or the long function by name)."""
    unexplained = []
    for name, path in _modules().items():
        text = path.read_text()
        tree = ast.parse(text)
        doc = ast.get_docstring(tree) or ""
        if text.count("\n") > 300 and "300 lines" not in doc:
            unexplained.append(f"{name}: {text.count(chr(10))} lines")
        for f in ast.walk(tree):
            if (
                isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                and f.end_lineno - f.lineno + 1 > 60
                and f.name not in doc
            ):
                unexplained.append(f"{name}.{f.name}: {f.end_lineno - f.lineno + 1} lines")
    assert not unexplained, "too long, with no reason in the module docstring:\n" + "\n".join(unexplained)


MAX_LINES = 400


def test_no_module_is_over_400_lines():
    """Small modules with names that say what they do: one over MAX_LINES is split."""
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
