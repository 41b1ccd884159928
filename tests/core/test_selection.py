"""Selection without hidden state: backend=, use_backend, $DROPKIT_BACKEND (read once), type."""

import asyncio
import os
import subprocess
import sys
import threading

import array_api_strict
import numpy as np
import pytest

import dropkit
from dropkit import selection
from dropkit.backend import Capabilities, capabilities, default_draw


def test_use_backend_selects_nests_and_restores():
    x = np.ones(4, np.float32)
    with dropkit.use_backend("array_api_strict") as caps:
        assert isinstance(caps, Capabilities) and caps.name == "array_api_strict"
        with pytest.raises(TypeError, match="selected backend 'array_api_strict'"):
            dropkit.dropout(x, 0.5, rng=0)  # the context wins over the array's type
        with dropkit.use_backend("numpy"):
            assert dropkit.get_backend().name == "numpy"
        assert dropkit.get_backend().name == "array_api_strict"
        # an explicit backend= still wins over the context
        assert np.array_equal(
            dropkit.dropout(x, 0.5, rng=0, backend="numpy"),
            dropkit.dropout(x, 0.5, rng=0, backend="numpy"),
        )
    assert dropkit.get_backend().name == "numpy"
    assert selection._OPEN == [0]


def test_use_backend_with_a_bad_name_fails_on_entry():
    with pytest.raises(ValueError, match="unknown backend 'nope'"), dropkit.use_backend("nope"):
        pass  # pragma: no cover - never entered
    assert selection._OPEN == [0]


def test_each_thread_and_task_has_its_own_context():
    seen = {}
    inside = threading.Event()
    leave = threading.Event()

    def worker():
        with dropkit.use_backend("array_api_strict"):
            seen["worker"] = dropkit.get_backend().name
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(10)
    seen["main"] = dropkit.get_backend().name  # the other thread's block is not ours
    leave.set()
    t.join()
    assert seen == {"worker": "array_api_strict", "main": "numpy"}

    async def task(name):
        with dropkit.use_backend(name):
            await asyncio.sleep(0)
            return dropkit.get_backend().name

    async def both():
        return await asyncio.gather(task("numpy"), task("array_api_strict"))

    assert asyncio.run(both()) == ["numpy", "array_api_strict"]


def test_the_environment_is_read_once_and_reread_on_request(monkeypatch):
    selection.reread_environment()
    before = selection.environment_backend()
    monkeypatch.setenv("DROPKIT_BACKEND", "array_api_strict")
    assert selection.environment_backend() == before  # not read on every call
    try:
        assert selection.reread_environment() == "array_api_strict"
        assert dropkit.get_backend().name == "array_api_strict"
    finally:
        monkeypatch.delenv("DROPKIT_BACKEND")
        selection.reread_environment()
    assert dropkit.get_backend().name == "numpy"


def test_the_environment_is_read_at_the_first_selection_of_a_process():
    code = (
        "import os, dropkit, numpy as np\n"
        "print(dropkit.get_backend().name)\n"
        "os.environ['DROPKIT_BACKEND'] = 'numpy'\n"
        "print(dropkit.get_backend().name)\n"
    )
    env = {**os.environ, "DROPKIT_BACKEND": "array_api_strict"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["array_api_strict", "array_api_strict"]


def test_the_type_lookup_is_a_plain_dict_filled_by_the_first_call():
    x = array_api_strict.ones(3)
    dropkit.dropout(x, 0.5, rng=0)
    caps = selection.BY_TYPE[type(x)]
    assert type(selection.BY_TYPE) is dict and caps.name == "array_api_strict"
    assert selection.select(x, "x", None) is caps
    assert selection.BY_LIBRARY["array_api_strict"] is caps


def test_importing_dropkit_and_a_backend_fills_no_table():
    code = (
        "import dropkit, dropkit_numpy, dropkit_array_api_strict\n"
        "from dropkit import selection\n"
        "print(len(selection.BY_TYPE), len(selection.BY_LIBRARY), len(selection.BY_NAME))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["0", "0", "0"]


class _Counting:
    """A backend whose optional members count how often they are looked up."""

    name = "counting"
    xp = array_api_strict
    lookups = 0

    def devices(self):
        return []

    def random_bits(self, draw, n, *, offset=0, device=None):  # pragma: no cover
        raise AssertionError

    def __getattribute__(self, attr):
        if attr in ("draw", "mask_scale"):
            type(self).lookups += 1
        return object.__getattribute__(self, attr)


def test_capabilities_are_found_once():
    b = _Counting()
    caps = capabilities(b)
    assert _Counting.lookups == 2  # draw and mask_scale, once each
    assert caps.mask_scale is None and caps.draw is default_draw
    caps.draw(3, None)
    assert _Counting.lookups == 2
