"""Fail if a module of bigquant (or a test) imports a private name (``_x``) from another module.

Private *modules* (``bigquant._kernels``, ``bigquant._dask``, ...) may be imported; a private
function, class or constant of another module may not: it would make the two modules one room.
(ruff's PLC2701 does not look at imports within the package itself.)

Usage: python .ci/check_private_imports.py [FOLDER ...]   (default: bigquant tests)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_dir(path: Path, node: ast.ImportFrom) -> Path | None:
    """The folder of the module a ``from X import ...`` names, when X is inside this repository."""
    if node.level:
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
    else:
        base = ROOT
    parts = (node.module or "").split(".") if node.module else []
    target = base.joinpath(*parts)
    return target if target.is_dir() or target.with_suffix(".py").is_file() or not parts else None


def _is_module(folder: Path | None, name: str) -> bool:
    return folder is not None and ((folder / name).is_dir() or (folder / f"{name}.py").is_file())


def check(path: Path) -> list[str]:
    problems = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        folder = _module_dir(path, node)
        for alias in node.names:
            name = alias.name
            if folder is None:  # another project's module: ruff's PLC2701 looks at those
                continue
            if name.startswith("_") and not name.startswith("__") and not _is_module(folder, name):
                where = "." * node.level + (node.module or "")
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: private name {name!r} imported from {where}")
    return problems


def main(argv: list[str]) -> int:
    folders = [ROOT / a for a in argv] or [ROOT / "bigquant", ROOT / "tests"]
    problems = [p for folder in folders for f in sorted(folder.rglob("*.py")) for p in check(f)]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
