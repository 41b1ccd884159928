"""BLAS threads of the training loop: chosen, applied while it trains, restored, same bits."""

import dataclasses
import json

import numpy as np
import pytest
from dk_helpers import no_plots
from threadpoolctl import threadpool_info

from dropkit.experiment.cli import main
from dropkit.experiment.data import load_dataset
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.plugins import new_plugin_manager
from dropkit.experiment.study import StudyPlan, run_study
from dropkit.experiment.tasks import Task, thread_limits, worker_threads
from dropkit.experiment.threads import (
    FLOPS_PER_THREAD,
    USER_VARIABLES,
    ThreadChoice,
    blas_threads,
    choose_threads,
    step_flops,
)
from dropkit.experiment.train import TrainConfig, train

# big enough that OpenBLAS splits its products over 2 threads (it keeps those under
# 65536 * 4 multiply-adds on one): 128 x 40 x 128 is 655360
CONFIG = TrainConfig(epochs=2, hidden=(128, 64), batch_size=128)


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def _pools():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


pytestmark = pytest.mark.skipif(not _blas_threads(), reason="no BLAS library threadpoolctl sees")


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist1d", train_size=300)


@pytest.fixture
def no_thread_variables(monkeypatch):
    for name in USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_plots():
    with no_plots():
        yield


class _Seen:
    """Records the BLAS pools' thread counts at every epoch's end."""

    def __init__(self):
        self.threads = []

    @hookimpl
    def dropkit_epoch_end(self, run, record):
        self.threads.append(_blas_threads())


def _pm(*plugins):
    return new_plugin_manager(*plugins, installed=False)


# ---- the rule ------------------------------------------------------------------------------------


def test_the_rule_scales_with_the_largest_product_within_the_cores():
    env = {}
    assert step_flops([40, 512, 256, 10], 256) == 2 * 256 * 512 * 256
    assert choose_threads(67_108_864, cap=16, environ=env).threads == 1
    assert choose_threads(FLOPS_PER_THREAD - 1, cap=16, environ=env).threads == 1
    assert choose_threads(3 * FLOPS_PER_THREAD, cap=16, environ=env).threads == 3
    assert choose_threads(100 * FLOPS_PER_THREAD, cap=4, environ=env).threads == 4
    assert choose_threads(0, cap=4, environ=env).threads == 1
    choice = choose_threads(67_108_864, cap=4, environ=env)
    assert choice.reason.startswith("auto: the largest product of a step is 67 MFLOP")


def test_without_a_cap_the_rule_leaves_the_busy_cores_alone():
    big = 10 * FLOPS_PER_THREAD
    assert choose_threads(big, environ={}, cores=8, load=0.3).threads == 8
    assert choose_threads(big, environ={}, cores=8, load=5.9).threads == 3
    assert choose_threads(big, environ={}, cores=2, load=3.5).threads == 1
    choice = choose_threads(big, environ={}, cores=2, load=3.5)
    assert choice.reason.endswith("at most 1 (2 cores, load average 3.5)")


def test_the_user_decides_with_threads_or_a_variable():
    assert choose_threads(10**12, requested=2, environ={}) == ThreadChoice(2, "--threads 2")
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        choice = choose_threads(10**12, environ={name: "3"})
        assert choice.threads is None and f"{name}=3 in the environment" in choice.reason
    assert choose_threads(10**12, cap=2, environ={"OMP_NUM_THREADS": " "}).threads == 2  # blank
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match=r"threads must be an integer >= 1 \(--threads N\)"):
            choose_threads(1, requested=bad)


# ---- applied while training, restored after ------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_the_limit_holds_while_training_and_is_restored(data, threads):
    before = _pools()
    seen = _Seen()
    result = train(CONFIG, data, plugin_manager=_pm(seen), threads=threads)
    # every pool, those of libraries loaded during the run (Numba's SciPy) included
    assert [set(t) for t in seen.threads] == [{threads}] * 2
    after = _pools()
    assert {k: after[k] for k in before} == before
    assert result.summary()["threads"] == {"threads": threads, "reason": f"--threads {threads}"}


def test_the_limit_is_restored_when_training_fails(data):
    before = _pools()

    class Boom:
        @hookimpl
        def dropkit_epoch_end(self, run, record):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(CONFIG, data, plugin_manager=_pm(Boom()), threads=1)
    after = _pools()
    assert {k: after[k] for k in before} == before


def test_the_default_is_chosen_for_the_sizes(data, no_thread_variables):
    with blas_threads(ThreadChoice(2, "a pool of 2, as on a 2-core machine")):
        seen = _Seen()
        result = train(CONFIG, data, plugin_manager=_pm(seen))
        assert _blas_threads() == [2] * len(seen.threads[0])
    assert seen.threads[0] == [1] * len(seen.threads[0])  # 128 x 128 x 64: far below a GFLOP
    choice = result.summary()["threads"]
    assert choice["threads"] == 1 and choice["reason"].startswith("auto:")


def test_a_variable_the_user_set_is_left_alone(data, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with blas_threads(ThreadChoice(2, "the pool the variable would have made")):
        seen = _Seen()
        result = train(CONFIG, data, plugin_manager=_pm(seen))
    assert seen.threads[0] == [2] * len(seen.threads[0])
    assert result.summary()["threads"]["threads"] is None
    assert "OPENBLAS_NUM_THREADS=2" in result.summary()["threads"]["reason"]


def test_one_and_two_threads_give_the_same_bits(data):
    one = train(CONFIG, data, plugin_manager=_pm(), threads=1)
    two = train(CONFIG, data, plugin_manager=_pm(), threads=2)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in one.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in two.history]
    for a, b in zip(one.params + one.best_params, two.params + two.best_params, strict=True):
        assert a.tobytes() == b.tobytes()


# ---- studies and the command line ----------------------------------------------------------------


def test_study_workers_get_the_rule_within_their_share(data, no_thread_variables, tmp_path):
    big = dataclasses.replace(CONFIG, hidden=(2048, 2048), batch_size=1024)
    task = Task("d", "r", tmp_path, big)
    flops = 2 * 270 * 2048 * 2048  # 300 rows, 30 held out: batches of 270
    chosen = worker_threads(task, data, cap=64)
    assert chosen.threads.threads == max(1, flops // FLOPS_PER_THREAD)
    assert chosen.threads.reason.endswith("at most 64 (this worker's share of the cores)")
    assert chosen.config == big and worker_threads(chosen, data, cap=1) == chosen
    assert worker_threads(task, data, cap=1).threads.threads == 1
    user = worker_threads(dataclasses.replace(task, threads=3), data, cap=1).threads
    assert user == ThreadChoice(3, "--threads 3")
    assert thread_limits(2, cores=8)["OPENBLAS_NUM_THREADS"] == "4"


def test_study_workers_leave_a_variable_the_user_set_alone(
    data, no_thread_variables, monkeypatch, tmp_path
):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    choice = worker_threads(Task("d", "r", tmp_path, CONFIG), data, cap=8).threads
    assert choice.threads is None and "OMP_NUM_THREADS=3 in the environment" in choice.reason


@pytest.mark.slow  # several processes or a training: seconds
def test_a_parallel_study_records_the_choice_its_parent_made(data, no_thread_variables, tmp_path):
    plan = StudyPlan(TrainConfig(epochs=1, hidden=(8,)), ("standard", "dropout"), (0,))
    runs = run_study(plan, data, tmp_path / "s", jobs=2, metrics=False)
    for per in runs.values():
        threads = per[0].summary()["threads"]
        assert threads["threads"] == 1
        assert threads["reason"].startswith("auto: the largest product of a step is")


def test_threads_on_the_command_line(tmp_path, capsys):
    tiny = ["--epochs", "1", "--train-size", "200", "--hidden", "8", "--quiet"]
    out = tmp_path / "c"
    assert main(["compare", *tiny, "--threads", "2", "--out", str(out)]) == 0
    assert "BLAS threads: 2 (--threads 2)" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropout"]["threads"] == {"threads": 2, "reason": "--threads 2"}
    assert main(["compare", *tiny, "--threads", "0", "--out", str(tmp_path / "z")]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
    assert np.isfinite(summary["standard"]["final_test_loss"])
