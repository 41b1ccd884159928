"""Reliability of the plugin registry (issue 11, "Plugins"): hostile plugins, built as tiny
installed distributions (a ``*.dist-info`` folder with ``entry_points.txt``) in a temporary
folder on ``sys.path``, must never break the other backends, listing or selection."""

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import dropkit
from dropkit import philox, registry, selection

REPO = Path(__file__).resolve().parents[2]
PREFIX = "dkfake_"  # every fake plugin module's name starts with it


def make_dist(site, dist, eps, modules, version="1.0"):
    """Install a fake distribution ``dist`` into folder ``site``.

    ``eps`` maps entry-point names (group ``dropkit``) to ``module[:attr]``, ``modules`` maps
    module names to their source.
    """
    site = Path(site)
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in eps.items())
    (info / "entry_points.txt").write_text(f"[dropkit]\n{lines}")
    return site


GOOD_RECORD = """
    import array_api_compat.numpy as xp
    from dropkit import ArrayAPIBackend, BackendRecord, hookimpl

    @hookimpl
    def dropkit_backends():
        return [BackendRecord("{name}", "a good one", lambda: ArrayAPIBackend("{name}", xp))]
"""


#: Frameworks whose import is slow: kept out where not yet imported (their backends are then
#: listed as unavailable), so that this module stays fast.
HEAVY = ("jax", "dask", "torch", "cupy")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path for fake distributions; the registry is rebuilt from it."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    for name in HEAVY:
        if name not in sys.modules:
            monkeypatch.setitem(sys.modules, name, None)
    registry.get_registry.cache_clear()
    yield folder
    registry.get_registry.cache_clear()  # (forgets what selection remembered too)
    for name in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[name]
    importlib.invalidate_caches()


def build():
    """Rebuild the registry from the entry points now on sys.path; return the warnings."""
    importlib.invalidate_caches()
    registry.get_registry.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = dropkit.list_backends()
    return infos, [str(w.message) for w in caught]


def rows(infos):
    """name -> list of infos with that name."""
    out = {}
    for info in infos:
        out.setdefault(info.name, []).append(info)
    return out


def numpy_still_works():
    x = np.ones(1000, np.float32)
    y = dropkit.dropout(x, 0.5, rng=0)
    backend = dropkit.get_backend(None, x)
    assert backend.name == "numpy" and type(backend).__module__ == "dropkit_numpy.backend"
    keep = np.asarray(philox.random_bits(np, 0, 0, 1000)) >= dropkit.ops.keep_threshold(0.5)
    np.testing.assert_array_equal(y, np.where(keep, np.float32(2), np.float32(0)))


def run_py(site, code, *args, env=None, cwd=None):
    """Run Python code (or ``-m module`` via args) with ``site`` first on PYTHONPATH."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, *(["-c", code] if code is not None else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """``dropkit backends`` and ``dropkit demo`` run once with several hostile plugins
    installed: one taking the name numpy, one calling sys.exit(3) at import, one with
    multi-line texts."""
    site = tmp_path_factory.mktemp("cli") / "site"
    make_dist(
        site,
        "dropkit-evil",
        {"aaa": f"{PREFIX}evil"},
        {f"{PREFIX}evil": HIJACK.format(name="numpy")},
    )
    make_dist(
        site,
        "dropkit-quitter",
        {"quitter": f"{PREFIX}quitter"},
        {f"{PREFIX}quitter": "import sys\nsys.exit(3)\n"},
    )
    make_dist(
        site,
        "dropkit-multiline",
        {"ml": f"{PREFIX}ml"},
        {
            f"{PREFIX}ml": """
        from dropkit import BackendRecord, hookimpl

        def _load():
            raise ImportError("line one\\nline two\\n\\tline three")

        @hookimpl
        def dropkit_backends():
            return [BackendRecord("ml", "summary\\nwith a newline", _load)]
        """
        },
    )
    # Keep the heavy frameworks out (their backends are then listed as unavailable).
    (site / "sitecustomize.py").write_text(
        f"import sys\nsys.modules.update(dict.fromkeys({(*HEAVY, 'matplotlib')}))\n"
    )
    listing = run_py(site, None, "-m", "dropkit.experiment.cli", "backends")
    demo = run_py(site, None, "-m", "dropkit.experiment.cli", "demo", "--size", "1000")
    return listing, demo


# ---------------------------------------------------------------------------------------------
# Issue case: a dropkit_backends hook that returns junk (['oops', 42]).
def test_junk_records_do_not_break_the_others(site):
    make_dist(
        site,
        "dropkit-junk",
        {"junk": f"{PREFIX}junk"},
        {
            f"{PREFIX}junk": """
            from dropkit import hookimpl

            @hookimpl
            def dropkit_backends():
                return ["oops", 42]
            """
        },
    )
    infos, messages = build()
    by = rows(infos)
    assert by["numpy"][0].available
    assert not by["junk"][0].available and by["junk"][0].distribution == "dropkit-junk"
    assert "'oops'" in by["junk"][0].reason and "42" in by["junk"][0].reason
    assert any("dropkit-junk" in m and "BackendRecord" in m for m in messages)
    numpy_still_works()


# Issue case: a record whose load() returns something that is not a backend.
@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ("42", "42 (int), not a backend"),
        ("None", "None (NoneType), not a backend"),
        ("object()", "(object), not a backend"),
        ("types.SimpleNamespace(name='bad', xp=xp)", "it lacks devices, random_bits"),
        ("types.SimpleNamespace(name='bad', xp=None, devices=list, random_bits=len)", "xp None"),
        ("types.SimpleNamespace(name=7, xp=xp, devices=list, random_bits=len)", "name is 7"),
    ],
)
def test_load_returning_a_non_backend_is_unavailable(site, returned, expected):
    make_dist(
        site,
        "dropkit-nonbackend",
        {"bad": f"{PREFIX}nonbackend"},
        {
            f"{PREFIX}nonbackend": f"""
            import types
            import array_api_compat.numpy as xp
            from dropkit import BackendRecord, hookimpl

            @hookimpl
            def dropkit_backends():
                return [BackendRecord("bad", "returns junk", lambda: {returned})]
            """
        },
    )
    infos, _ = build()
    bad = rows(infos)["bad"][0]
    assert not bad.available
    assert "dropkit-nonbackend" in bad.reason and expected in bad.reason
    with pytest.raises(RuntimeError, match=r"backend 'bad' is unavailable: .*dropkit-nonbackend"):
        dropkit.get_backend("bad")
    numpy_still_works()


# Beyond: load() returns a working backend registered under another name.
def test_load_returning_a_backend_with_another_name_is_unavailable(site):
    make_dist(
        site,
        "dropkit-renamed",
        {"r": f"{PREFIX}renamed"},
        {
            f"{PREFIX}renamed": GOOD_RECORD.replace(
                'ArrayAPIBackend("{name}"', 'ArrayAPIBackend("x"'
            ).format(name="renamed")
        },
    )
    infos, _ = build()
    info = rows(infos)["renamed"][0]
    assert not info.available and "'x'" in info.reason and "'renamed'" in info.reason


HIJACK = """
    import array_api_compat.numpy as xp
    from dropkit import ArrayAPIBackend, BackendRecord, hookimpl

    class Hijack(ArrayAPIBackend):
        def mask_scale(self, *args, **kwargs):
            raise AssertionError("hijacked")

    @hookimpl
    def dropkit_backends():
        return [BackendRecord("{name}", "steals numpy", lambda: Hijack("{name}", xp), ("numpy",))]
"""


# Issue case: an entry point sorted before the built-in one registers the name 'numpy'.
def test_a_plugin_cannot_take_the_name_of_a_builtin_backend(site):
    make_dist(
        site,
        "dropkit-evil",
        {"aaa": f"{PREFIX}evil"},
        {f"{PREFIX}evil": HIJACK.format(name="numpy")},
    )
    infos, messages = build()
    numpys = rows(infos)["numpy"]
    assert [(i.distribution, i.available) for i in numpys] == [
        ("dropkit-evil", False),
        ("dropkit-numpy", True),
    ]
    assert "dropkit-numpy" in numpys[0].reason and "built-in" in numpys[0].reason
    assert {i.name: i for i in infos}["numpy"].distribution == "dropkit-numpy"
    assert any("dropkit-evil" in m and "numpy" in m for m in messages)
    assert dropkit.get_backend("numpy").name == "numpy"
    numpy_still_works()


# Issue case: the same hijack through the command line (it failed there).
def test_a_hijacking_plugin_does_not_break_the_backends_command(cli):
    result, demo = cli
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()[1:]]
    assert ["numpy", "dropkit-numpy", "0.1.0", "available"] in [line[:4] for line in lines]
    assert ["numpy", "dropkit-evil", "1.0", "unavailable"] in [line[:4] for line in lines]
    assert demo.returncode == 0, demo.stderr
    assert "backend numpy (<dropkit backend 'numpy' (kernels=" in demo.stdout


# Beyond: a plugin claiming numpy arrays (namespaces) under its own name does not take them.
def test_a_plugin_cannot_claim_the_arrays_of_a_builtin_backend(site):
    make_dist(
        site,
        "dropkit-claim",
        {"aaa": f"{PREFIX}claim"},
        {f"{PREFIX}claim": HIJACK.format(name="aaa")},
    )
    infos, messages = build()  # loads every backend, "aaa" included
    assert rows(infos)["aaa"][0].available
    assert any("dropkit-claim" in m and "numpy arrays" in m for m in messages)
    numpy_still_works()  # neither the registry nor the native route picks "aaa"
    assert dropkit.get_backend("aaa").name == "aaa"  # by name it is still there


# Beyond: two third-party distributions register one name: neither wins by sort order.
def test_a_name_registered_twice_is_refused_naming_both(site):
    for dist, ep in (("dropkit-one", "a1"), ("dropkit-two", "b2")):
        make_dist(
            site, dist, {ep: f"{PREFIX}{ep}"}, {f"{PREFIX}{ep}": GOOD_RECORD.format(name="twin")}
        )
    infos, messages = build()
    twins = rows(infos)["twin"]
    assert len(twins) == 2 and not any(t.available for t in twins)
    assert {t.distribution for t in twins} == {"dropkit-one", "dropkit-two"}
    with pytest.raises(RuntimeError, match=r"'twin'.*dropkit-one.*dropkit-two.*uninstall"):
        dropkit.get_backend("twin")
    assert any("twin" in m and "dropkit-one" in m and "dropkit-two" in m for m in messages)


# Beyond: two third-party backends claim the arrays of one library that no built-in serves.
def test_two_plugins_claiming_one_library_are_not_picked_by_sort_order(site):
    for dist, name in (("dropkit-one", "a1"), ("dropkit-two", "b2")):
        make_dist(
            site,
            dist,
            {name: f"{PREFIX}{name}"},
            {
                f"{PREFIX}{name}": f"""
            import array_api_strict
            from dropkit import ArrayAPIBackend, BackendRecord, hookimpl

            @hookimpl
            def dropkit_backends():
                return [BackendRecord("{name}", "s", lambda: ArrayAPIBackend("{name}",
                        array_api_strict), ("fakelib",))]
            """
            },
        )
    build()

    class FakeArray:
        pass

    FakeArray.__module__ = "fakelib.core"
    with pytest.raises(RuntimeError, match=r"fakelib arrays .*'a1' \(dropkit-one\).*'b2'"):
        dropkit.get_backend(None, FakeArray())


# Issue case: a plugin calling sys.exit(3) at import (it killed `dropkit backends`).
def test_sys_exit_at_import_does_not_kill_the_listing(cli):
    result, _ = cli
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "available" in lines["numpy"].split()
    assert "unavailable" in lines["quitter"] and "dropkit-quitter" in lines["quitter"]
    assert "SystemExit" in lines["quitter"] and "3" in lines["quitter"]


# Beyond: sys.exit in the hook, in load(), and a BaseException subclass.
@pytest.mark.parametrize(
    ("hook", "load"),
    [
        ("raise SystemExit(4)", "None"),
        ("return [BackendRecord('quit', 's', _quit)]", None),
        ("raise Odd('odd')", "None"),
    ],
)
def test_system_exit_from_a_hook_or_load_is_a_failure(site, hook, load):
    make_dist(
        site,
        "dropkit-quit",
        {"quit": f"{PREFIX}quit"},
        {
            f"{PREFIX}quit": f"""
        import sys
        from dropkit import BackendRecord, hookimpl

        class Odd(BaseException):
            pass

        def _quit():
            sys.exit(5)

        @hookimpl
        def dropkit_backends():
            {hook}
        """
        },
    )
    infos, _ = build()
    info = rows(infos)["quit"][0]
    assert not info.available and "dropkit-quit" in info.reason
    assert any(word in info.reason for word in ("SystemExit", "Odd"))
    numpy_still_works()


KBD = """
    from dropkit import BackendRecord, hookimpl

    def _load():
        raise KeyboardInterrupt

    @hookimpl
    def dropkit_backends():
        return [BackendRecord("aaa_kbd", "interrupted", _load)]  # listed first
"""


# Issue case: a KeyboardInterrupt from load(): stop cleanly, no training message.
@pytest.mark.parametrize("argv", [["backends"], ["demo", "--backend", "aaa_kbd", "--size", "10"]])
def test_keyboard_interrupt_in_load_stops_cleanly(tmp_path, argv):
    site = make_dist(
        tmp_path / "site", "dropkit-kbd", {"kbd": f"{PREFIX}kbd"}, {f"{PREFIX}kbd": KBD}
    )
    result = run_py(site, None, "-m", "dropkit.experiment.cli", *argv)
    assert result.returncode == 130
    assert "Traceback" not in result.stderr
    assert "epoch" not in result.stderr and "--resume" not in result.stderr
    assert "interrupted" in result.stderr and "'aaa_kbd'" in result.stderr
    assert "dropkit-kbd" in result.stderr


# Issue case, API side: the interrupt propagates, and is not remembered as a failure.
def test_keyboard_interrupt_in_load_propagates_and_is_retried(site):
    make_dist(site, "dropkit-kbd", {"kbd": f"{PREFIX}kbd"}, {f"{PREFIX}kbd": KBD})
    importlib.invalidate_caches()
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt, match=r"loading backend 'aaa_kbd'.*dropkit-kbd"):
            dropkit.get_backend("aaa_kbd")
    numpy_still_works()


# Beyond: a KeyboardInterrupt at import or in the hook stops the registry build, which is
# rebuilt (not cached half-done) on the next call.
def test_keyboard_interrupt_while_importing_a_plugin_propagates(site):
    make_dist(
        site, "dropkit-kbd", {"kbd": f"{PREFIX}kbd"}, {f"{PREFIX}kbd": "raise KeyboardInterrupt\n"}
    )
    importlib.invalidate_caches()
    registry.get_registry.cache_clear()
    with pytest.raises(KeyboardInterrupt, match=r"importing plugin 'kbd'.*dropkit-kbd"):
        dropkit.list_backends()
    with pytest.raises(KeyboardInterrupt):
        dropkit.list_backends()


# Beyond: the hook returns something that is not a list of records at all.
@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ("None", "None"),
        ("42", "int"),
        ("'numpy'", "str"),
        ("{'name': 'x'}", "dict"),
        ("itertools.count()", "more than"),
        ("(1 / 0 for _ in range(1))", "ZeroDivisionError"),
    ],
)
def test_hook_returning_a_non_list(site, returned, expected):
    make_dist(
        site,
        "dropkit-weird",
        {"weird": f"{PREFIX}weird"},
        {
            f"{PREFIX}weird": f"""
        import itertools
        from dropkit import hookimpl

        @hookimpl
        def dropkit_backends():
            return {returned}
        """
        },
    )
    infos, messages = build()
    info = rows(infos)["weird"][0]
    assert not info.available and "dropkit-weird" in info.reason and expected in info.reason
    assert any("dropkit-weird" in m for m in messages)
    numpy_still_works()


# Beyond: records with bad fields are refused one by one; the good records of the same
# plugin are kept.
@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("BackendRecord(7, 's', _load)", "name"),
        ("BackendRecord('', 's', _load)", "name"),
        ("BackendRecord('two words', 's', _load)", "name"),
        ("BackendRecord('x' * 300, 's', _load)", "name"),
        ("BackendRecord('ok2', None, _load)", "summary"),
        ("BackendRecord('ok2', 's', 'not callable')", "load"),
        ("BackendRecord('ok2', 's', _load, 'numpy')", "namespaces"),
        ("BackendRecord('ok2', 's', _load, (1,))", "namespaces"),
    ],
)
def test_bad_record_fields_are_refused_one_by_one(site, record, expected):
    make_dist(
        site,
        "dropkit-fields",
        {"fields": f"{PREFIX}fields"},
        {
            f"{PREFIX}fields": f"""
        import array_api_strict
        from dropkit import ArrayAPIBackend, BackendRecord, hookimpl

        def _load():
            return ArrayAPIBackend("good1", array_api_strict)

        @hookimpl
        def dropkit_backends():
            return [BackendRecord("good1", "fine", _load), {record}]
        """
        },
    )
    infos, _ = build()
    by = rows(infos)
    assert by["good1"][0].available
    assert not by["fields"][0].available
    assert expected in by["fields"][0].reason and "dropkit-fields" in by["fields"][0].reason
    assert "ok2" not in by


# Beyond: the existing broken-plugin cases name the distribution too.
def test_failures_name_the_distribution(site):
    make_dist(
        site,
        "dropkit-broken",
        {
            "noimport": f"{PREFIX}missing_module_xyz",
            "raises": f"{PREFIX}raises",
            "noattr": f"{PREFIX}raises:nothing_here",
        },
        {
            f"{PREFIX}raises": """
        from dropkit import hookimpl

        @hookimpl
        def dropkit_backends():
            raise RuntimeError("hook exploded")
        """
        },
    )
    infos, _ = build()
    by = rows(infos)
    for name in ("noimport", "raises", "noattr"):
        assert not by[name][0].available
        assert "dropkit-broken" in by[name][0].reason
        assert by[name][0].distribution == "dropkit-broken"
    assert "hook exploded" in by["raises"][0].reason
    with pytest.raises(RuntimeError, match=r"plugin 'raises' .*dropkit-broken.*hook exploded"):
        dropkit.get_backend("raises")


# Beyond: a broken plugin whose entry point is called "numpy" does not hide the built-in.
def test_a_broken_plugin_named_numpy_does_not_hide_the_builtin(site):
    make_dist(site, "dropkit-shadow", {"numpy": f"{PREFIX}no_such_module"}, {})
    infos, _ = build()
    numpys = rows(infos)["numpy"]
    assert [i.distribution for i in numpys] == ["dropkit-shadow", "dropkit-numpy"]
    assert numpys[1].available and not numpys[0].available
    numpy_still_works()


# Beyond: an implementation with a misspelt hook name or unknown argument is reported.
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("@hookimpl\ndef dropkit_backend():\n    return []\n", "dropkit_backend"),
        ("@hookimpl\ndef dropkit_backends(extra):\n    return []\n", "extra"),
        # an application hook in the library's group: never called, and the message says where
        ("@hookimpl\ndef dropkit_epoch_end(run, record):\n    pass\n", "dropkit.experiment"),
    ],
)
def test_misspelt_hooks_are_reported(site, source, expected):
    make_dist(
        site,
        "dropkit-typo",
        {"typo": f"{PREFIX}typo"},
        {f"{PREFIX}typo": "from dropkit import hookimpl\n" + source},
    )
    _, messages = build()
    assert any("dropkit-typo" in m and expected in m for m in messages), messages
    numpy_still_works()


# Beyond: a plugin that imports slowly is imported once per process, not per call.
def test_a_slow_plugin_is_imported_once(site):
    make_dist(
        site,
        "dropkit-slow",
        {"slow": f"{PREFIX}slow"},
        {
            f"{PREFIX}slow": """
        import time
        time.sleep(0.3)
        IMPORTS = 1
        from dropkit import hookimpl

        @hookimpl
        def dropkit_backends():
            return []
        """
        },
    )
    build()
    for _ in range(3):
        numpy_still_works()
    dropkit.list_backends()
    assert sys.modules[f"{PREFIX}slow"].IMPORTS == 1


# Beyond: a load() that fails is tried once; the failure is remembered.
def test_a_failing_load_is_tried_once(site):
    make_dist(
        site,
        "dropkit-once",
        {"once": f"{PREFIX}once"},
        {
            f"{PREFIX}once": """
        from dropkit import BackendRecord, hookimpl
        CALLS = []

        def _load():
            CALLS.append(1)
            raise ImportError("no gpu here")

        @hookimpl
        def dropkit_backends():
            return [BackendRecord("once", "s", _load)]
        """
        },
    )
    build()
    for _ in range(3):
        with pytest.raises(RuntimeError, match="no gpu here"):
            dropkit.get_backend("once")
    assert sys.modules[f"{PREFIX}once"].CALLS == [1]


# Beyond: selection by name and by environment variable.
@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        (42, TypeError, r"backend name must be a string, got 42 \(int\)"),
        (b"numpy", TypeError, "bytes"),
        ("", ValueError, "empty"),
        ("NumPy", ValueError, r"unknown backend 'NumPy'.*did you mean 'numpy'"),
        ("no-such", ValueError, "installed backends: array_api_strict, .*numpy"),
    ],
)
def test_selection_by_a_bad_name(monkeypatch, name, error, match):
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    with pytest.raises(error, match=match):
        dropkit.get_backend(name)
    with pytest.raises(error, match=match):
        dropkit.dropout(np.ones(3), 0.5, rng=0, backend=name)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("bogus", r"unknown backend 'bogus' \(from \$DROPKIT_BACKEND\)"),
        ("NUMPY", r"\$DROPKIT_BACKEND.*did you mean 'numpy'"),
    ],
)
def test_selection_by_a_bad_environment_variable(monkeypatch, value, match):
    monkeypatch.setenv(registry.ENV_VAR, value)
    selection.reread_environment()  # (read once per process; again after a change)
    try:
        with pytest.raises(ValueError, match=match):
            dropkit.get_backend()
        with pytest.raises(ValueError, match=match):
            dropkit.dropout(np.ones(3), 0.5, rng=0)
    finally:
        monkeypatch.delenv(registry.ENV_VAR)
        selection.reread_environment()


@pytest.mark.parametrize("value", ["", " numpy\n", "numpy"])
def test_selection_by_environment_variable_accepted(monkeypatch, value):
    monkeypatch.setenv(registry.ENV_VAR, value)
    selection.reread_environment()
    try:
        assert dropkit.get_backend().name == "numpy"
        numpy_still_works()
    finally:
        monkeypatch.delenv(registry.ENV_VAR)
        selection.reread_environment()


def test_bad_environment_variable_on_the_command_line():
    env = {**os.environ, registry.ENV_VAR: "bogus"}
    result = subprocess.run(
        [sys.executable, "-m", "dropkit.experiment.cli", "demo", "--size", "10"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    assert "DROPKIT_BACKEND" in result.stderr and "bogus" in result.stderr
    assert "Traceback" not in result.stderr


# Beyond: the listing stays one line per backend whatever a plugin's texts hold.
def test_backends_listing_is_one_line_per_backend(cli):
    result, _ = cli
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (ml,) = [line for line in lines if line.startswith("ml ")]
    assert "line one line two line three" in ml
    assert all(line.split()[0] != "line" for line in lines[1:])


# ---------------------------------------------------------------------------------------------
# Issue case: package folder and HOME read-only: Numba cannot cache its kernels.
def _read_only_copy(tmp_path):
    """A copy of dropkit_numpy that nobody (not even root) can cache into, and a HOME and
    NUMBA_CACHE_DIR below a plain file (so no folder can be made there)."""
    site = tmp_path / "ro_site"
    shutil.copytree(
        REPO / "backends" / "numpy" / "dropkit_numpy",
        site / "dropkit_numpy",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (site / "dropkit_numpy" / "__pycache__").write_text("")  # blocks the in-tree cache
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    for path in (site / "dropkit_numpy", site):
        for child in path.iterdir():
            child.chmod(0o444 if child.is_file() else 0o555)
    site.chmod(0o555)
    env = {
        "HOME": str(blocker / "home"),
        "NUMBA_CACHE_DIR": str(blocker / "numba"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "XDG_CACHE_HOME": str(blocker / "xdg"),
        "MPLCONFIGDIR": str(tmp_path),
    }  # matplotlib (the plots plugin) has its own warning
    return site, env


CHECK_READ_ONLY = """
import warnings
warnings.simplefilter("always")
import numpy as np
import dropkit, dropkit_numpy
from dropkit import philox
assert dropkit_numpy.__file__.startswith({site!r}), dropkit_numpy.__file__
b = dropkit.get_backend("numpy")
x = np.ones(5000, np.float32)
y = dropkit.dropout(x, 0.25, rng=3)
keep = np.asarray(philox.random_bits(np, 3, 0, x.size)) >= dropkit.ops.keep_threshold(0.25)
assert np.array_equal(y, np.where(keep, np.float32(4 / 3), np.float32(0)))
print("KERNELS", b.kernels)
"""


def test_read_only_package_and_home_fall_back_to_uncached_kernels(tmp_path):
    site, env = _read_only_copy(tmp_path)
    result = run_py(site, CHECK_READ_ONLY.format(site=str(site)), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "KERNELS numba" in result.stdout
    warned = [line for line in result.stderr.splitlines() if "Warning" in line]
    assert len(warned) == 1, result.stderr
    assert "cannot cache" in warned[0] and "NUMBA_CACHE_DIR" in warned[0]


# Beyond: Numba itself failing with another error at import: pure-NumPy kernels, one warning.
def test_numba_failing_at_import_falls_back_to_numpy_kernels(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "numba.py").write_text("raise OSError('libllvmlite.so: cannot open shared file')\n")
    code = CHECK_READ_ONLY.format(site=str(REPO))
    result = run_py(site, code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "KERNELS numpy" in result.stdout
    warned = [line for line in result.stderr.splitlines() if "Warning" in line]
    assert len(warned) == 1 and "libllvmlite" in warned[0], result.stderr


# Beyond: Numba missing altogether is the documented silent fallback.
def test_numba_missing_falls_back_silently(tmp_path):
    code = "import sys\nsys.modules['numba'] = None\n" + CHECK_READ_ONLY.format(site=str(REPO))
    result = run_py(tmp_path, code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "KERNELS numpy" in result.stdout
    assert "Warning" not in result.stderr


# Beyond: hook wrappers cannot be isolated: reported and not run; the plugin's backends work.
def test_a_hook_wrapper_is_reported_and_not_run(site):
    make_dist(
        site,
        "dropkit-wrap",
        {"wrap": f"{PREFIX}wrap"},
        {
            f"{PREFIX}wrap": textwrap.dedent(GOOD_RECORD.format(name="wrapped"))
            + textwrap.dedent("""
            @hookimpl(wrapper=True, specname="dropkit_backends")
            def wrapped_backends():
                raise RuntimeError("wrapper ran")
                yield
            """)
        },
    )
    infos, messages = build()
    assert rows(infos)["wrapped"][0].available
    assert any("dropkit-wrap" in m and "wrapper" in m for m in messages)


# Beyond: a hook implemented under another attribute name (specname) is found.
def test_a_hook_with_specname_is_registered(site):
    make_dist(
        site,
        "dropkit-spec",
        {"spec": f"{PREFIX}spec"},
        {
            f"{PREFIX}spec": """
            import array_api_compat.numpy as xp
            from dropkit import ArrayAPIBackend, BackendRecord, hookimpl

            @hookimpl(specname="dropkit_backends")
            def my_backends():
                return [BackendRecord("spec", "s", lambda: ArrayAPIBackend("spec", xp))]
            """
        },
    )
    infos, _ = build()
    assert rows(infos)["spec"][0].available


# Beyond: a plugin with no hooks at all, and another distribution's unreadable
# entry_points.txt, are accepted quietly.
def test_a_plugin_without_hooks_and_corrupt_metadata_are_harmless(site):
    make_dist(site, "dropkit-empty", {"empty": f"{PREFIX}empty"}, {f"{PREFIX}empty": "X = 1\n"})
    info = site / "corrupt-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: corrupt\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[dropkit\nfoo = bar\n")
    infos, messages = build()
    assert "empty" not in rows(infos) and rows(infos)["numpy"][0].available
    assert not [m for m in messages if "dropkit-empty" in m]
    numpy_still_works()


# ---------------------------------------------------------------------------------------------
# Issue 21, item 11: escape sequences in a backend's summary reached the terminal raw.
ESCAPES = """
    import array_api_compat.numpy as xp
    from dropkit import ArrayAPIBackend, BackendRecord, hookimpl

    @hookimpl
    def dropkit_backends():
        return [BackendRecord("esc", "\\x1b]0;owned\\x07\\x1b[2Jsummary\\u202e",
                              lambda: ArrayAPIBackend("esc", xp))]
"""


def test_a_plugins_text_reaches_the_terminal_printable(site, capsys):
    make_dist(site, "dropkit-esc", {"esc": f"{PREFIX}esc"}, {f"{PREFIX}esc": ESCAPES})
    build()
    from dropkit.experiment.cli import main

    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("esc "))
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert line.endswith("\\x1b]0;owned\\x07\\x1b[2Jsummary\\x202e")


# DROPKIT_PLUGINS leaves a backend plugin out; `dropkit backends` still lists it, with why.
@pytest.mark.parametrize("policy", ["builtin", "dropkit-numpy,dropkit-other"])
def test_the_plugin_policy_leaves_a_backend_out_and_says_so(site, monkeypatch, policy):
    make_dist(
        site,
        "dropkit-good",
        {"good": f"{PREFIX}good"},
        {f"{PREFIX}good": GOOD_RECORD.format(name="good")},
    )
    monkeypatch.setenv("DROPKIT_PLUGINS", policy)
    infos, caught = build()
    (good,) = rows(infos)["good"]
    assert not good.available and f"left out by DROPKIT_PLUGINS={policy!r}" in good.reason
    assert good.distribution == "dropkit-good" and good.version == "1.0"
    assert caught == []  # the user's choice is not a warning
    with pytest.raises(RuntimeError, match="DROPKIT_PLUGINS"):
        dropkit.get_backend("good")
    numpy_still_works()
    monkeypatch.setenv("DROPKIT_PLUGINS", f"{policy},dropkit_GOOD")
    infos, _ = build()
    assert rows(infos)["good"][0].available
