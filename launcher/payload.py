"""What a job runs on every rank: a notebook cell, a function or a script, packed with
cloudpickle; for a cell, the notebook variables it reads are found from its AST."""

from __future__ import annotations

import ast
import builtins
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

KINDS = ("cell", "function", "script")

#: Names IPython puts into the user namespace that a job never needs.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "display"}


class PayloadError(ValueError):
    """A payload cannot be built; the message names the variable at fault."""


@dataclass
class Payload:
    """One job's work, identical on every rank."""

    kind: str
    code: str = ""
    namespace: dict[str, Any] = field(default_factory=dict)
    function: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    script: str = ""
    argv: list[str] = field(default_factory=list)
    pull: list[str] = field(default_factory=list)

    def dumps(self) -> bytes:
        """The payload as bytes for the jobs API."""
        return bytes(cloudpickle.dumps(self))


def _stored(node: ast.AST | None) -> set[str]:
    if node is None:
        return set()
    return {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def _names_read(stmt: ast.stmt) -> set[str]:
    """Names a statement reads (`x += 1` reads x), less those it binds for its own use first:
    loop and comprehension variables, `with ... as` names, parameters, exception names."""
    read, own = set(), set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            read.add(node.id)
        elif isinstance(node, ast.AugAssign):
            read |= _stored(node.target)
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            own |= _stored(node.target)
        elif isinstance(node, ast.withitem):
            own |= _stored(node.optional_vars)
        elif isinstance(node, ast.arguments):
            params = [*node.posonlyargs, *node.args, *node.kwonlyargs, node.vararg, node.kwarg]
            own |= {a.arg for a in params if a is not None}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            own.add(node.name)
    return read - own


def _names_bound(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement binds in the cell's namespace."""
    bound = set()
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {stmt.name}
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
    return bound


#: One parse at a time: CPython before 3.11.8/3.12.1 keeps the AST constructor's recursion depth
#: per interpreter, and two threads parsing at once fail with "AST constructor recursion depth
#: mismatch" (python/cpython#106905).
_PARSE_LOCK = threading.Lock()


def free_names(code: str) -> list[str]:
    """Names the cell reads before binding them itself, in order of first use."""
    with _PARSE_LOCK:
        tree = ast.parse(code)
    bound: set[str] = set()
    free: dict[str, None] = {}
    for stmt in tree.body:
        for name in sorted(_names_read(stmt) - bound):
            free.setdefault(name)
        bound |= _names_bound(stmt)
    return list(free)


def _is_shippable(name: str, value: Any) -> bool:
    if name.startswith("_") or name in _IPYTHON_NAMES:
        return False
    return not (hasattr(builtins, name) and getattr(builtins, name) is value)


def pick_variables(
    code: str, user_ns: Mapping[str, Any], push: Iterable[str] = (), auto_push: bool = True
) -> dict[str, Any]:
    """The notebook variables to send with a cell: those it reads (if `auto_push`) plus `push`.

    Every variable is checked to pickle; one that does not raises PayloadError naming it.
    """
    names = [n for n in free_names(code) if n in user_ns] if auto_push else []
    chosen = {n: user_ns[n] for n in names if _is_shippable(n, user_ns[n])}
    for name in push:
        if name not in user_ns:
            raise PayloadError(f"--push {name}: no variable {name!r} in the notebook")
        chosen[name] = user_ns[name]
    for name, value in chosen.items():
        try:
            cloudpickle.dumps(value)
        except Exception as e:
            kind = type(value).__name__
            raise PayloadError(
                f"cannot send variable {name!r} ({kind}) to the workers: {type(e).__name__}: {e}"
                + ("" if isinstance(value, types.ModuleType) else "; recreate it inside the cell")
            ) from None
    return chosen


def cell_payload(
    code: str,
    user_ns: Mapping[str, Any],
    *,
    push: Iterable[str] = (),
    pull: Iterable[str] = (),
    auto_push: bool = True,
) -> Payload:
    """A cell with the notebook variables it needs; `pull` names come back from rank 0."""
    try:
        compile(code, "<cell>", "exec")
    except SyntaxError as e:
        raise PayloadError(f"the cell does not compile: {e}") from None
    namespace = pick_variables(code, user_ns, push, auto_push)
    return Payload(kind="cell", code=code, namespace=namespace, pull=list(pull))


def function_payload(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Payload:
    """A function call; rank 0's return value comes back."""
    payload = Payload(kind="function", function=fn, args=args, kwargs=kwargs)
    try:
        payload.dumps()
    except Exception as e:
        raise PayloadError(
            f"cannot send {getattr(fn, '__name__', fn)!r} and its arguments: {e}"
        ) from None
    return payload


def script_payload(script: str, argv: list[str]) -> Payload:
    """A Python script (path relative to the workspace) run as __main__ with `argv`."""
    return Payload(kind="script", script=script, argv=list(argv))
