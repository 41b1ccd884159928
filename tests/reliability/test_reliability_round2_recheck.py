"""Reliability, round two re-checked (issue 21): cases a hostile re-audit of main found open.

Each test is one case of the re-check (``/tmp/s27/audit/outcomes.md`` lists every case
and its outcome); a comment above it says what it did before. torch and JAX cases skip
without them, as the rest of the suite does.
"""

from __future__ import annotations

import numpy as np
import pytest

import dropkit
from dropkit.alpha import alpha_coefficients

# 1 - p = 2**-40: alpha dropout's scale a is about 5.2e5, beyond float16's 65504.
ALPHA_OVERFLOW_P = 1 - 2.0**-40


# ---- family ops: float16 overflow with p close to 1 ---------------------------------------------


# Before: alpha_dropout and feature_alpha_dropout of float16 ones at 1 - p = 2**-40 returned
# all NaN (a = inf in float16, 0 * inf where dropped), no error: silently wrong. dropout,
# dropblock2d, drop_path and dropout1d/2d/3d refuse such a p for float16.
@pytest.mark.parametrize(
    "op",
    [
        lambda x: dropkit.alpha_dropout(x, ALPHA_OVERFLOW_P, rng=1),
        lambda x: dropkit.feature_alpha_dropout(x, ALPHA_OVERFLOW_P, rng=1),
        lambda x: dropkit.alpha_dropout_backward(x, ALPHA_OVERFLOW_P, rng=1),
        lambda x: dropkit.feature_alpha_dropout_backward(x, ALPHA_OVERFLOW_P, rng=1),
    ],
    ids=["alpha_dropout", "feature_alpha_dropout", "alpha_backward", "feature_alpha_backward"],
)
def test_alpha_dropout_refuses_a_p_whose_scale_overflows_float16(op):
    with pytest.raises(ValueError, match=r"not finite in float16.*wider dtype"):
        op(np.ones((4, 8, 3), np.float16))


def test_alpha_dropout_keeps_the_largest_float16_p_whose_scale_fits():
    # the bound a * |alpha'| just below 65504: drawn as before, finite where kept
    p = 1 - 2.0**-30
    a, _ = alpha_coefficients(p)
    assert a * 1.7581 < 65504
    x = np.zeros((64, 64), np.float16)
    y = dropkit.alpha_dropout(x, p, rng=1)
    assert np.isfinite(y).all()
    wide = dropkit.alpha_dropout(x.astype(np.float32), p, rng=1)
    assert np.array_equal(y, wide.astype(np.float16))
    # float32 never overflows: the same p refused for float16 draws there
    assert np.isfinite(dropkit.alpha_dropout(np.ones(8, np.float32), ALPHA_OVERFLOW_P, rng=1)).all()


# ---- item 8: a layer's backward differentiates its last forward --------------------------------


def _layers():
    return [
        dropkit.Dropout(0.5, rng=0),
        dropkit.GaussianDropout(0.5, rng=0),
        dropkit.AlphaDropout(0.5, rng=0),
        dropkit.Dropout2d(0.5, rng=0),
        dropkit.FeatureAlphaDropout(0.5, rng=0),
        dropkit.DropPath(0.5, rng=0),
        dropkit.DropBlock2d(0.5, block_size=1, rng=0),
    ]


# Before: the backward recorded the draw, the mode and the shape, not p (nor block_size,
# channel_axis): `layer.p = 0.9` between forward and backward regenerated another mask with
# another scale, no error: silently wrong gradients.
@pytest.mark.parametrize("layer", _layers(), ids=lambda layer: type(layer).__name__)
def test_layer_backward_uses_the_settings_of_its_forward(layer):
    x = np.ones((2, 3, 4, 4))
    layer(x)
    expected = layer.backward(np.ones_like(x)).copy()
    layer.p = 0.9
    for name, value in (("block_size", 3), ("channel_axis", 2)):
        if hasattr(layer, name):
            setattr(layer, name, value)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), expected)
    assert layer.p == 0.9  # the layer keeps its new setting for the next forward
