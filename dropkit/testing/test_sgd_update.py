"""A backend's optional ``sgd_update`` kernel equals the array-API update bit for bit.

(The optimiser kernel is the application's, not part of the backend contract:
issue 19 moves it and this test into the application.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dropkit.testing.profiles import suite_settings
from dropkit.testing.strategies import arrays, float_dtypes, shapes, to_namespace, to_numpy

pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

SETTINGS = suite_settings(max_examples=40)


@SETTINGS
@given(
    data=st.data(),
    nesterov=st.booleans(),
    decay=st.sampled_from([0.0, 1e-3, 0.1]),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
)
def test_fused_sgd_equals_array_api_update(dropkit_backend, data, nesterov, decay, momentum):
    if getattr(dropkit_backend, "sgd_update", None) is None:
        pytest.skip(f"backend {dropkit_backend.name!r} has no fused SGD kernel")
    if nesterov and momentum == 0:
        nesterov = False
    xp = dropkit_backend.xp
    dtype = data.draw(st.sampled_from([d for d in float_dtypes(xp) if d != "float16"]))
    shape = data.draw(shapes(min_dims=1, max_dims=2, max_side=40))
    w, v_grad = (data.draw(arrays(dtype, st.just(shape))) for _ in range(2))
    fused_w, plain_w = to_namespace(xp, w), to_namespace(xp, w)
    fused_v, plain_v = xp.zeros_like(fused_w), xp.zeros_like(plain_w)
    for _ in range(2):
        g = to_namespace(xp, v_grad)
        done = dropkit_backend.sgd_update(
            fused_w, g, fused_v, lr=0.1, momentum=momentum, weight_decay=decay, nesterov=nesterov
        )
        assume(done)  # a declined example is not a comparison (all declined: an error)
        plain_w, plain_v = _sgd_reference(plain_w, g, plain_v, 0.1, momentum, decay, nesterov)
    np.testing.assert_array_equal(to_numpy(fused_w), to_numpy(plain_w))
    np.testing.assert_array_equal(to_numpy(fused_v), to_numpy(plain_v))


def _sgd_reference(
    w: Any, g: Any, v: Any, lr: float, momentum: float, decay: float, nesterov: bool
) -> tuple[Any, Any]:
    """One SGD step in array-API operations (the formula the kernels must reproduce)."""
    if decay:
        g = g + decay * w
    if momentum:
        v = momentum * v + g
        g = g + momentum * v if nesterov else v
    return w - lr * g, v
