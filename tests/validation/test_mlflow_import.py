"""MLflow is imported in one place, under one lock: two threads importing parts of it at once fail
(half-initialised `mlflow.entities`, or "Depends on file 'databricks.proto'"), so no other module
may import it."""

import ast
import pathlib

import faceveil


def test_only_mlflow_log_imports_mlflow():
    root = pathlib.Path(faceveil.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
                found.append((path.relative_to(root).as_posix(), node.lineno))
    assert found and {p for p, _ in found} == {"validation/mlflow_log.py"}, found
    source = (root / "validation" / "mlflow_log.py").read_text()
    tree = ast.parse(source)
    loader = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "load_mlflow")
    inside = range(loader.lineno, loader.end_lineno + 1)
    assert all(line in inside for _, line in found), "mlflow imported outside load_mlflow (and its lock)"
