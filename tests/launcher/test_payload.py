"""What a %%distribute cell sends: the notebook variables it reads, found from its AST."""

from __future__ import annotations

import threading

import cloudpickle
import numpy as np
import pytest

from hubflow.launcher.payload import PayloadError, cell_payload, free_names, pick_variables


def test_free_names_are_read_before_the_cell_binds_them() -> None:
    code = "import os\ny = x + 1\nz = y * w\nfor i in range(3):\n    total += i\n"
    assert free_names(code) == ["x", "w", "range", "total"]


def test_names_used_inside_functions_and_comprehensions_count() -> None:
    code = "def f(a):\n    return helper(a) + k\nresult = [f(v) for v in data]\n"
    assert set(free_names(code)) >= {"helper", "k", "data"}
    assert "a" not in free_names(code)


def test_auto_push_takes_notebook_values_functions_and_closures() -> None:
    def make_scale(factor):
        return lambda v: v * factor

    def double(v):
        return 2 * v

    ns = {"arr": np.arange(3), "double": double, "scale": make_scale(10), "unused": object()}
    chosen = pick_variables("out = scale(double(arr)).sum()", ns)
    assert set(chosen) == {"arr", "double", "scale"}
    restored = cloudpickle.loads(cloudpickle.dumps(chosen))
    assert restored["scale"](restored["double"](restored["arr"])).sum() == 60


def test_builtins_modules_and_ipython_names_are_not_pushed() -> None:
    ns = {"len": len, "In": [], "_": 1, "np": np}
    assert set(pick_variables("n = len(np.arange(2)); print(In, _)", ns)) == {"np"}


def test_unpicklable_variable_is_refused_by_name() -> None:
    ns = {"lock": threading.Lock(), "x": 1}
    with pytest.raises(PayloadError, match=r"variable 'lock' \(lock\)"):
        cell_payload("with lock:\n    y = x", ns)


def test_push_adds_names_and_no_auto_push_sends_only_those() -> None:
    ns = {"a": 1, "b": 2}
    assert set(pick_variables("c = a + b", ns, push=["b"], auto_push=False)) == {"b"}
    with pytest.raises(PayloadError, match="--push missing: no variable 'missing'"):
        pick_variables("c = 1", ns, push=["missing"])


def test_a_cell_that_does_not_compile_is_refused() -> None:
    with pytest.raises(PayloadError, match="does not compile"):
        cell_payload("def broken(:\n", {})
