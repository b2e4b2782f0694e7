"""The built-in default corpus: the running Python's own documentation.

It needs no download and no extra package, so `mintline run` works offline on any machine:
the 79 topics of `pydoc_data.topics` (~0.5 MB of reference prose) and the docstrings of the
standard library (~1.5 MB), read from source with `ast` so nothing is imported or executed
(importing every module would run `antigravity` and friends).
"""

from __future__ import annotations

import ast
import sysconfig
import warnings
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from pretrain.corpus.document import Document

BUILTIN_NAME = "builtin:python-docs"

# Test suites and GUI/tool packages hold little prose and much boilerplate.
_SKIP_TOP_LEVEL = {
    "site-packages",
    "dist-packages",
    "test",
    "idlelib",
    "lib2to3",
    "tkinter",
    "turtledemo",
    "ensurepip",
}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def iter_pydoc_topics() -> Iterator[Document]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield Document(id=f"pydoc-topic:{name}", text=topics[name], source="pydoc_data.topics")


def stdlib_source_files(root: Path | None = None) -> list[Path]:
    root = root or stdlib_root()
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in _SKIP_TOP_LEVEL or "tests" in parts or "test" in parts:
            continue
        files.append(path)
    return files


def module_docstrings(path: Path, root: Path | None = None) -> Document | None:
    """One document per module: its docstring and those of its classes and functions."""
    root = root or stdlib_root()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old modules
            tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return None
    parts = []
    for node in _statement_walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                parts.append(doc)
    if not parts:
        return None
    relative = path.relative_to(root).as_posix()
    return Document(id=f"stdlib:{relative}", text="\n\n".join(parts), source=f"stdlib:{relative}")


_STATEMENT_LIKE = (ast.stmt, ast.excepthandler, ast.match_case)


def _statement_walk(tree: ast.AST) -> Iterator[ast.AST]:
    """ast.walk's breadth-first order restricted to statements: docstrings live only on
    modules, classes and functions, and no expression holds a statement, so skipping
    expressions yields the same nodes in the same order at a fraction of the cost."""
    queue = deque([tree])
    while queue:
        node = queue.popleft()
        queue.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, _STATEMENT_LIKE))
        yield node


def iter_builtin_corpus() -> Iterator[Document]:
    yield from iter_pydoc_topics()
    root = stdlib_root()
    for path in stdlib_source_files(root):
        document = module_docstrings(path, root)
        if document is not None:
            yield document
