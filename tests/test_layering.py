"""The house rules a machine can check: webui → core ← jobs, no shell, small modules with a docstring."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "jobs", "webui")


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_and_jobs_never_import_gradio_and_core_never_imports_jobs() -> None:
    for package in ("core", "jobs"):
        for path in modules(package):
            assert "gradio" not in imported(path), path
    for path in modules("core"):
        assert "jobs" not in imported(path) and "webui" not in imported(path), path


def test_webui_does_no_torch_subprocess_or_sql() -> None:
    for path in modules("webui"):
        assert not imported(path) & {"torch", "subprocess", "sqlalchemy", "sqlite3", "jobs"}, path


def test_no_shell_and_small_documented_modules() -> None:
    for package in PACKAGES:
        for path in modules(package):
            text = path.read_text()
            assert "shell" + "=True" not in text, path  # spelled apart so this line does not match itself
            assert len(text.splitlines()) <= 400, path
            assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"
            assert path.stem not in ("utils", "util"), path


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_line = next(line.strip() for line in ci.splitlines() if "pytest" in line)
    assert test_line in readme


def core_imports(path: Path) -> set[str]:
    """The ``core.*`` modules a file imports (absolute imports, anywhere in the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("core."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core."):
            names.add(node.module)
    return names


def test_store_paths_and_problems_import_nothing_above_them() -> None:
    for path in [*modules("core/store"), ROOT / "core" / "paths.py", ROOT / "core" / "problems.py"]:
        above = {m for m in core_imports(path) if not m.startswith("core.store")}
        assert not above, f"{path} imports {sorted(above)}"


def test_every_core_package_says_what_it_holds() -> None:
    for init in (ROOT / "core").rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.splitlines()) == 1, f"{init}: one docstring line saying what the package holds"
