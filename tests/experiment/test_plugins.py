"""The application's hooks and plugins are its own: the library never loads them, and every
command or run has its own plugin manager (no global one)."""

import subprocess
import sys

import pytest
from dk_helpers import no_plots

import dropkit
from dropkit.experiment import hookspecs
from dropkit.experiment.cli import main
from dropkit.experiment.data import load_dataset
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.plugins import HOOKS as APP_HOOKS
from dropkit.experiment.plugins import new_plugin_manager
from dropkit.experiment.reporters import MetricsFile, Progress
from dropkit.experiment.train import TrainConfig, train

TINY = ["--epochs", "2", "--train-size", "200", "--hidden", "8"]


class Recorder:
    """Records the names of the runs whose events it sees."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def dropkit_train_start(self, run):
        self.seen.append(("start", run.name))

    @hookimpl
    def dropkit_epoch_end(self, run, record):
        self.seen.append(("epoch", run.name))


APP_MODULES = """
import sys
import numpy as np
import dropkit
dropkit.dropout(np.ones(4), 0.5, rng=0)
dropkit.list_backends(load=False)
def app():
    return sorted(
        m for m in sys.modules
        if m.startswith(("dropkit_plots", "dropkit.experiment")) or m == "dropkit_numpy.sgd"
    )
print("LIBRARY", app())
from dropkit.experiment.plugins import new_plugin_manager
new_plugin_manager()
print("APPLICATION", app())
"""


def test_the_library_never_loads_the_application_or_its_plugins():
    result = subprocess.run(
        [sys.executable, "-c", APP_MODULES], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["LIBRARY"] == "[]"
    # the control: the application's manager does load them (so the test could fail)
    assert "'dropkit_plots.plugin'" in lines["APPLICATION"]
    assert "'dropkit.experiment.plugins'" in lines["APPLICATION"]


def test_the_library_hooks_and_the_application_hooks_are_apart():
    from dropkit import hookspecs as library

    library_hooks = {n for n in dir(library) if n.startswith("dropkit_")}
    assert library_hooks == {"dropkit_backends"}
    assert {
        "dropkit_train_start",
        "dropkit_epoch_end",
        "dropkit_train_end",
        "dropkit_compare_end",
        "dropkit_study_end",
        "dropkit_sweep_end",
        "dropkit_sgd_kernel",
    } == APP_HOOKS
    assert hookspecs.GROUP == "dropkit.experiment"
    assert not hasattr(dropkit.get_plugin_manager().hook, "dropkit_epoch_end")


def test_two_runs_with_different_reporters_do_not_see_each_other():
    data = load_dataset(train_size=100)
    config = TrainConfig(epochs=2, hidden=(8,))
    a, b = Recorder(), Recorder()
    train(config, data, name="a", plugin_manager=new_plugin_manager(a, installed=False))
    train(config, data, name="b", plugin_manager=new_plugin_manager(b, installed=False))
    assert a.seen == [("start", "a"), ("epoch", "a"), ("epoch", "a")]
    assert b.seen == [("start", "b"), ("epoch", "b"), ("epoch", "b")]


def test_two_commands_in_one_process_have_their_own_reporters(tmp_path, capsys):
    a, b = Recorder(), Recorder()
    with no_plots():
        assert main(["train", *TINY, "--out", str(tmp_path / "a")], plugins=[a]) == 0
        first = capsys.readouterr().err
        assert main(["train", *TINY, "--quiet", "--out", str(tmp_path / "b")], plugins=[b]) == 0
        second = capsys.readouterr().err
    assert a.seen == b.seen == [("start", "train"), ("epoch", "train"), ("epoch", "train")]
    assert len(a.seen) == 3  # a saw nothing of the second command
    assert "[train] epoch 2/2" in first and "[train]" not in second  # --quiet: no Progress
    for folder in ("a", "b"):  # each command's own metrics file
        assert (tmp_path / folder / "metrics.csv").read_text().count("\n") == 3
    # nothing stays registered anywhere: a new manager, and the library's, have no reporter
    for pm in (new_plugin_manager(), dropkit.get_plugin_manager()):
        assert not [p for p in pm.get_plugins() if isinstance(p, MetricsFile | Progress)]


def test_a_program_can_leave_the_installed_plugins_out(tmp_path, capsys):
    assert main(["train", *TINY, "--quiet", "--out", str(tmp_path)], installed_plugins=False) == 0
    assert "no curves.png: install the plots plugin" in capsys.readouterr().out
    assert not (tmp_path / "curves.png").exists()


@pytest.mark.parametrize("installed", [False, True])
def test_new_managers_hold_the_given_plugins_after_the_installed_ones(installed):
    first, second = Recorder(), Recorder()
    pm = new_plugin_manager(first, second, installed=installed)
    names = [type(p).__name__ for p in pm.get_plugins() if isinstance(p, Recorder)]
    assert names == ["Recorder", "Recorder"]
    impls = [impl.plugin for impl in pm.hook.dropkit_epoch_end.get_hookimpls()]
    assert impls[-2:] == [first, second]  # pluggy calls the last registered first
    assert ("dropkit-plots:plots" in [n for n, _ in pm.list_name_plugin()]) is installed
