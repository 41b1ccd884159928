"""pytest plugin of the conformance suite: ``--dropkit-backend`` and the ``dropkit_*`` fixtures.

Registered through the ``pytest11`` entry point, so it is loaded wherever
dropkit is installed, and it is inert there: its fixtures carry the
``dropkit_`` prefix (no clash with a project's own ``backend`` fixture),
nothing is autouse, it never writes ``os.environ``, it imports dropkit only
when a test asks for a backend, and Hypothesis's profiles only when
``--hypothesis-profile`` names one of dropkit's (:mod:`dropkit.testing.profiles`).

Fixtures:

- ``dropkit_backend_name``: the name of the backend under test, parametrized
  over ``--dropkit-backend NAME`` (repeatable), or every installed backend;
- ``dropkit_backend``: that backend, loaded (session scope); a backend found
  by discovery that cannot load here skips its tests with one reason per
  backend, reported once (``SKIPPED [n] ... backend 'x' unavailable here: ...``);
- ``dropkit_use_backend``: for a test that uses ``dropkit_backend``, the ops
  called during the test go to it (through :func:`dropkit.use_backend`), even
  where another backend serves the same arrays. Request it with
  ``pytestmark = pytest.mark.usefixtures("dropkit_use_backend")`` (not in the
  test's signature, so Hypothesis sees no function-scoped fixture).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import pytest

OPTION = "--dropkit-backend"
NAME_FIXTURE = "dropkit_backend_name"


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
    """Parametrize ``dropkit_backend_name`` over the selected backends."""
    if NAME_FIXTURE not in metafunc.fixturenames:
        return
    names = metafunc.config.getoption(OPTION)
    if not names:
        from dropkit import list_backends

        names = [info.name for info in list_backends()]
    metafunc.parametrize(NAME_FIXTURE, names, scope="session")


@pytest.fixture
def dropkit_use_backend(request: pytest.FixtureRequest) -> Any:
    """Route the ops to the backend under test for the test's duration (see the module docs).

    Does nothing for a test that does not use ``dropkit_backend``.
    """
    if "dropkit_backend" not in request.fixturenames:
        yield None
        return
    from dropkit import use_backend

    name = request.getfixturevalue("dropkit_backend").name
    try:
        with use_backend(name) as caps:
            yield caps
    finally:
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
def dropkit_backend(request: pytest.FixtureRequest, dropkit_backend_name: str) -> Any:
    """The loaded backend under test.

    A backend named with ``--dropkit-backend`` must load (an error otherwise);
    one found by discovery that cannot load here is skipped with the reason.
    """
    from dropkit import get_backend, list_backends

    explicit = request.config.getoption(OPTION)
    if not explicit:
        info = {b.name: b for b in list_backends()}[dropkit_backend_name]
        if not info.available:
            skip_unavailable(dropkit_backend_name, info.reason or "no reason given")
    return get_backend(dropkit_backend_name)
