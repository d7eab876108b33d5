"""Modules over a line limit and functions over a code-line limit (issue 19), as a report.

    python tools/code_size.py [--module-lines 600] [--function-lines 80] [PATH ...]

A module counts all its lines; a function counts its lines of code: docstring, comments and
blank lines aside (a nested function counts in its own right and in its parent). Prints one
line per module or function over its limit, largest first; exits 0 (a report, not a gate:
docs/architecture.md says why the ones left are left).
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from pathlib import Path


def code_lines(source: str, node: ast.AST) -> int:
    """Lines of ``node`` that hold code: not blank, not only a comment, not its docstring."""
    lines = source.splitlines()[node.lineno - 1 : node.end_lineno]
    skip: set[int] = set()
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            skip.update(range(body[0].lineno, body[0].end_lineno + 1))
    not_code = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                tokenize.ENDMARKER}  # fmt: skip
    code_rows: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
        if tok.type not in not_code:
            code_rows.update(range(tok.start[0], tok.end[0] + 1))
    offset = node.lineno - 1
    return sum(1 for row in code_rows if row + offset not in skip)


def report(paths: list[Path], module_limit: int, function_limit: int) -> list[str]:
    modules, functions = [], []
    files = sorted(p for root in paths for p in ([root] if root.is_file() else root.rglob("*.py")))
    for path in files:
        source = path.read_text()
        n = len(source.splitlines())
        if n > module_limit:
            modules.append((n, f"{path}: {n} lines"))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = code_lines(source, node)
                if size > function_limit:
                    where = f"{path}:{node.lineno} {node.name}"
                    functions.append((size, f"{where}: {size} lines of code"))
    out = [f"modules over {module_limit} lines: {len(modules)}"]
    out += [f"  {text}" for _, text in sorted(modules, reverse=True)]
    out.append(f"functions over {function_limit} lines of code: {len(functions)}")
    out += [f"  {text}" for _, text in sorted(functions, reverse=True)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("src/sharpseek")])
    parser.add_argument("--module-lines", type=int, default=600)
    parser.add_argument("--function-lines", type=int, default=80)
    args = parser.parse_args(argv)
    print("\n".join(report(args.paths, args.module_lines, args.function_lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
