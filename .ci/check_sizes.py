"""Fail if a module of bigquant has more than 400 lines or a function more than 80.

A function's lines are counted from its first decorator to its end, less its docstring: a
fully documented signature (numpydoc parameters) is not what the limit is about.

Usage: python .ci/check_sizes.py [FOLDER ...]   (default: bigquant)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
ROOT = Path(__file__).resolve().parents[1]


def check(path: Path) -> list[str]:
    text = path.read_text()
    rel = path.relative_to(ROOT)
    problems = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        problems.append(f"{rel}: {lines} lines, more than {MAX_MODULE_LINES}")
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            n = (node.end_lineno or node.lineno) - start + 1
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                n -= (body[0].end_lineno or body[0].lineno) - body[0].lineno + 1
            if n > MAX_FUNCTION_LINES:
                problems.append(
                    f"{rel}:{node.lineno}: function {node.name} has {n} lines, more than {MAX_FUNCTION_LINES}"
                )
    return problems


def main(argv: list[str]) -> int:
    folders = [ROOT / a for a in argv] or [ROOT / "bigquant"]
    problems = [p for folder in folders for f in sorted(folder.rglob("*.py")) for p in check(f)]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
