"""Reliability of the application's plugins (entry-point group ``dropkit.experiment``): hostile
plugins, built as tiny installed distributions in a temporary folder on ``sys.path``, never stop
a run; each failure is reported once, naming the distribution."""

import importlib
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from dropkit.experiment.checkpoint import load_checkpoint
from dropkit.experiment.data import load_dataset
from dropkit.experiment.plugins import new_plugin_manager
from dropkit.experiment.train import TrainConfig, train

PREFIX = "dkappfake_"  # every fake plugin module's name starts with it


def make_dist(site, dist, eps, modules, version="1.0"):
    """Install a fake distribution ``dist`` with entry points ``eps`` of the application's group."""
    site = Path(site)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in eps.items())
    (info / "entry_points.txt").write_text(f"[dropkit.experiment]\n{lines}")


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    yield folder
    for name in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[name]
    importlib.invalidate_caches()


def build():
    """A new plugin manager with the installed plugins; the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = new_plugin_manager()
    return pm, [str(w.message) for w in caught]


OBSERVER = """
    from dropkit.experiment.hookspecs import hookimpl
    CALLS = []

    @hookimpl
    def dropkit_train_start(run):
        CALLS.append("start")
        {start}

    @hookimpl
    def dropkit_epoch_end(run, record):
        CALLS.append("epoch")
        {epoch}

    @hookimpl
    def dropkit_train_end(run, result):
        CALLS.append("end")
        {end}

    @hookimpl
    def dropkit_compare_end(out_dir, results):
        CALLS.append("compare")
        {compare}
"""


def _observer(site, **body):
    body = {**{k: "return 42" for k in ("start", "epoch", "end", "compare")}, **body}
    make_dist(
        site,
        "dropkit-observer",
        {"observer": f"{PREFIX}observer"},
        {f"{PREFIX}observer": OBSERVER.format(**body)},
    )


# Training hooks of an installed plugin that raise or return junk do not stop a run; the
# failure is reported once, naming the distribution, and the plugin is switched off.
@pytest.mark.parametrize("where", ["start", "epoch", "end"])
@pytest.mark.parametrize("fault", ["raise ValueError('plugin bug')", "raise SystemExit(2)"])
def test_a_raising_training_hook_does_not_stop_the_run(site, tmp_path, where, fault):
    _observer(site, **{where: fault})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(
            TrainConfig(epochs=3, hidden=(8,)),
            load_dataset(train_size=100),
            out_dir=tmp_path / "run",
        )
    assert len(result.history) == 3
    assert (tmp_path / "run" / "checkpoint.npz").exists()
    reports = [str(w.message) for w in caught if "dropkit-observer" in str(w.message)]
    assert len(reports) == 1 and f"dropkit_{'train_' if where != 'epoch' else ''}" in reports[0]
    calls = sys.modules[f"{PREFIX}observer"].CALLS
    assert calls.count(where) == 1  # switched off after its failure
    assert calls[0] == "start"


# The compare hook raising after the comparison is written.
def test_a_raising_compare_hook_keeps_the_comparison(site, tmp_path):
    _observer(site, compare="raise OSError('disk of the plots plugin')")
    from dropkit.experiment import run_compare

    with pytest.warns(RuntimeWarning, match="dropkit-observer.*dropkit_compare_end.*disk"):
        results = run_compare(
            TrainConfig(epochs=1, hidden=(8,)), load_dataset(train_size=100), tmp_path / "cmp"
        )
    assert set(results) == {"standard", "dropout"}
    assert (tmp_path / "cmp" / "summary.json").exists()


# A Ctrl-C inside a training hook still stops the run (not swallowed).
def test_keyboard_interrupt_in_a_training_hook_stops_the_run(site, tmp_path):
    _observer(site, epoch="raise KeyboardInterrupt")
    with pytest.raises(KeyboardInterrupt):
        train(
            TrainConfig(epochs=3, hidden=(8,)),
            load_dataset(train_size=100),
            out_dir=tmp_path / "run",
        )
    assert (tmp_path / "run" / "checkpoint.npz").exists()  # epoch 1 is kept


# A plugin that fails to import (or calls sys.exit) is reported and left out; the others load.
@pytest.mark.parametrize(
    ("source", "expected"),
    [("raise ImportError('no scipy here')", "no scipy here"), ("import sys\nsys.exit(3)", "exit")],
)
def test_a_plugin_failing_at_import_is_left_out(site, source, expected):
    make_dist(site, "dropkit-broken", {"broken": f"{PREFIX}broken"}, {f"{PREFIX}broken": source})
    _observer(site)
    pm, messages = build()
    (message,) = [m for m in messages if "dropkit-broken" in m]
    assert "failed to load" in message and expected in message
    names = [name for name, _ in pm.list_name_plugin()]
    assert "dropkit-observer:observer" in names and not any("broken" in n for n in names)


# A misspelt hook name or an unknown argument is reported.
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("@hookimpl\ndef dropkit_epoch_ends(run, record):\n    pass\n", "dropkit_epoch_ends"),
        ("@hookimpl\ndef dropkit_epoch_end(run, record, extra):\n    pass\n", "extra"),
    ],
)
def test_misspelt_hooks_are_reported(site, source, expected):
    make_dist(
        site,
        "dropkit-typo",
        {"typo": f"{PREFIX}typo"},
        {f"{PREFIX}typo": "from dropkit.experiment.hookspecs import hookimpl\n" + source},
    )
    _, messages = build()
    assert any("dropkit-typo" in m and expected in m for m in messages), messages


# Hook wrappers cannot be isolated: reported and not run; the plugin's other hooks work.
def test_a_hook_wrapper_is_reported_and_not_run(site):
    make_dist(
        site,
        "dropkit-wrap",
        {"wrap": f"{PREFIX}wrap"},
        {
            f"{PREFIX}wrap": """
            from dropkit.experiment.hookspecs import hookimpl
            CALLS = []

            @hookimpl(wrapper=True)
            def dropkit_epoch_end(run, record):
                raise RuntimeError("wrapper ran")
                yield

            @hookimpl
            def dropkit_train_start(run):
                CALLS.append(run)
            """
        },
    )
    pm, messages = build()
    assert any("dropkit-wrap" in m and "wrapper" in m for m in messages)
    pm.hook.dropkit_epoch_end(run=None, record={})  # does not raise
    pm.hook.dropkit_train_start(run="r")
    assert sys.modules[f"{PREFIX}wrap"].CALLS == ["r"]


# A hook implemented under another attribute name (specname) is found and guarded.
def test_a_hook_with_specname_is_registered(site):
    make_dist(
        site,
        "dropkit-spec",
        {"spec": f"{PREFIX}spec"},
        {
            f"{PREFIX}spec": """
            from dropkit.experiment.hookspecs import hookimpl

            @hookimpl(specname="dropkit_epoch_end")
            def on_epoch(run, record):
                raise ValueError("boom")
            """
        },
    )
    pm, _ = build()
    with pytest.warns(RuntimeWarning, match=r"dropkit-spec.*on_epoch hook failed.*boom"):
        pm.hook.dropkit_epoch_end(run=None, record={})
    pm.hook.dropkit_epoch_end(run=None, record={})  # switched off: no second warning


# A failure switches the plugin off in its own manager only: the next command's manager
# (a new one) runs it again.
def test_switched_off_only_in_its_own_manager(site):
    _observer(site, epoch="raise ValueError('once')")
    first, _ = build()
    with pytest.warns(RuntimeWarning, match="once"):
        first.hook.dropkit_epoch_end(run=None, record={})
    first.hook.dropkit_epoch_end(run=None, record={})
    second, _ = build()
    with pytest.warns(RuntimeWarning, match="once"):
        second.hook.dropkit_epoch_end(run=None, record={})
    assert sys.modules[f"{PREFIX}observer"].CALLS == ["epoch", "epoch"]


BROKEN = 'raise ValueError("broken \\x1b[31mred\\x1b[0m plugin")\n'


# ---------------------------------------------------------------------------------------------
# Issue 21, item 11: hooks receive copies. An epoch hook that wrote record["test_acc"] = 1.0
# put 100% into the checkpoint's history; a train-end hook could edit the returned result.
def test_hooks_edit_only_their_own_copies(site, tmp_path):
    _observer(
        site,
        start="run.history.append({'forged': True}); run.config = None",
        epoch="record['test_acc'] = 1.0; record['loss'] = float('nan')",
        end="result.history.clear(); result.params[0][...] = 7.0",
    )
    result = train(
        TrainConfig(epochs=2, hidden=(8,)), load_dataset(train_size=100), out_dir=tmp_path / "run"
    )
    assert sys.modules[f"{PREFIX}observer"].CALLS == ["start", "epoch", "epoch", "end"]
    assert len(result.history) == 2
    assert all(r["test_acc"] < 1.0 and r["loss"] == r["loss"] for r in result.history)
    assert not (result.params[0] == 7.0).all()
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert [r["test_acc"] for r in meta["history"]] == [r["test_acc"] for r in result.history]


# Under -W error (PYTHONWARNINGS=error) a broken plugin was a traceback that ended the command.
def test_warnings_as_errors_do_not_turn_a_broken_plugin_into_a_traceback(site, capsys):
    make_dist(site, "dkapp-broken", {"broken": f"{PREFIX}broken"}, {f"{PREFIX}broken": BROKEN})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pm = new_plugin_manager()
    assert pm.get_plugin("dkapp-broken:broken") is None
    err = capsys.readouterr().err
    assert "dropkit: warning: plugin 'broken'" in err and "dkapp-broken" in err
    assert "\x1b" not in err and "\\x1b[31m" in err  # the plugin's escape sequence, spelt out


# DROPKIT_PLUGINS=builtin (or a list of distributions) leaves the others out, silently.
@pytest.mark.parametrize(
    ("policy", "loaded"),
    [
        (None, True),
        ("all", True),
        ("builtin", False),
        ("dkapp-other", False),
        ("builtin, dropkit_Observer", True),
    ],
)
def test_the_plugin_policy_chooses_what_loads(site, monkeypatch, policy, loaded):
    _observer(site)
    if policy is None:
        monkeypatch.delenv("DROPKIT_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("DROPKIT_PLUGINS", policy)
    pm, caught = build()
    assert (pm.get_plugin("dropkit-observer:observer") is not None) is loaded
    assert caught == []


def test_a_plugin_policy_that_names_nothing_is_refused(site, monkeypatch):
    _observer(site)
    monkeypatch.setenv("DROPKIT_PLUGINS", " , ")
    with pytest.raises(ValueError, match=r"names no plugin: use 'all'.*'builtin'"):
        new_plugin_manager()
