"""pytest plugin of the conformance suite: ``--dropkit-backend`` and the ``backend`` fixture.

Registered through the ``pytest11`` entry point, so it is active wherever
dropkit is installed; it imports dropkit only when a test asks for a backend.
"""

from __future__ import annotations

from typing import Any

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
            pytest.skip(f"backend {backend_name!r} unavailable here: {info.reason}")
    return get_backend(backend_name)
