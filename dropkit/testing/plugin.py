"""pytest plugin of the conformance suite: ``--dropkit-backend`` and the ``backend`` fixture.

Registered through the ``pytest11`` entry point, so it is active wherever
dropkit is installed; it imports dropkit only when a test asks for a backend,
and Hypothesis only when ``--hypothesis-profile`` names one of dropkit's
profiles (:mod:`dropkit.testing.profiles`), so other projects' runs are
unchanged. A backend that cannot load here skips its tests with one reason per
backend, reported once (``SKIPPED [n] ... backend 'x' unavailable here: ...``).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import pytest

OPTION = "--dropkit-backend"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--dropkit-backend NAME`` (repeatable)."""
    group = parser.getgroup("dropkit", "dropkit conformance suite")
    group.addoption(
        OPTION,
        action="append",
        default=None,
        metavar="NAME",
        help="run the dropkit conformance suite on this backend (repeatable; default: every "
        "installed backend, skipping unavailable ones)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Register dropkit's Hypothesis profiles when ``--hypothesis-profile`` names one.

    Before Hypothesis's own plugin loads the named profile (``tryfirst``).
    """
    profile = config.getoption("--hypothesis-profile", default=None)
    if isinstance(profile, str) and profile.startswith("dropkit"):
        import dropkit.testing.profiles  # noqa: F401  (registers the profiles)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``backend_name`` over the selected backends."""
    if "backend_name" not in metafunc.fixturenames:
        return
    names = metafunc.config.getoption(OPTION)
    if not names:
        from dropkit import list_backends

        names = [info.name for info in list_backends()]
    metafunc.parametrize("backend_name", names, scope="session")


@pytest.fixture(autouse=True)
def _select_backend_under_test(request: pytest.FixtureRequest) -> Any:
    """Route the ops to the backend under test, even if another serves the same arrays.

    (Two backends may serve NumPy arrays; selection by the arrays' library would
    always pick the same one.) Only for tests that use the ``backend`` fixture.
    """
    if "backend" not in request.fixturenames:
        yield
        return
    import os

    from dropkit.registry import ENV_VAR

    name = request.getfixturevalue("backend").name
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old
        _release_compiled(name)


def _release_compiled(name: str) -> None:
    """Drop JAX's compiled computations after a test on the ``jax`` backend.

    JAX keeps every compilation (one per shape a property draws) for the life
    of the process: without this, the suite's JAX runs grow by gigabytes.
    """
    jax = sys.modules.get("jax")
    if name == "jax" and jax is not None:
        jax.clear_caches()


def skip_here(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip the test (or, with ``allow_module_level``, the module), reported at the caller's line.

    pytest folds identical skips by (file, line, reason): a reason raised from
    one place (a fixture, a helper) for many tests, e.g. a backend that cannot
    load, is then one line of the ``-rs`` summary with its count.
    """
    caller = sys._getframe(1)
    exc = pytest.skip.Exception(reason, allow_module_level=allow_module_level)
    exc.dropkit_location = (caller.f_code.co_filename, caller.f_lineno)  # type: ignore[attr-defined]
    raise exc


def skip_unavailable(name: str, reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip because backend ``name`` cannot load here (``reason``): one summary line per backend."""
    skip_here(f"backend {name!r} unavailable here: {reason}", allow_module_level=allow_module_level)


def _at_skip_location(report: Any, excinfo: Any) -> None:
    where = getattr(excinfo.value, "dropkit_location", None) if excinfo else None
    if where is not None and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (where[0], where[1], report.longrepr[2])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Report a :func:`skip_here` skip at the place that raised it (folded summary).

    Touches only skips raised by :func:`skip_here`; every other report passes unchanged.
    """
    report = yield
    _at_skip_location(report, call.excinfo)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """The same for a module skipped by :func:`skip_here` at import."""
    report = yield
    call = getattr(report, "call", None)
    _at_skip_location(report, call.excinfo if call is not None else None)
    return report


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest, backend_name: str) -> Any:
    """The loaded backend under test.

    A backend named with ``--dropkit-backend`` must load (an error otherwise);
    one found by discovery that cannot load here is skipped with the reason.
    """
    from dropkit import get_backend, list_backends

    explicit = request.config.getoption(OPTION)
    if not explicit:
        info = {b.name: b for b in list_backends()}[backend_name]
        if not info.available:
            skip_unavailable(backend_name, info.reason or "no reason given")
    return get_backend(backend_name)
