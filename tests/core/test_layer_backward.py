"""A layer's backward differentiates its last forward: its draw, its mode, its shape.

Found by the second hostile audit (issue 21, item 8): after ``layer.eval()``,
``layer.backward(g)`` was the identity, and a gradient of another shape
silently got a fresh mask.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropkit import layers

SHAPE = (2, 4, 6, 6)


def make(name: str) -> layers.Dropout:
    if name == "DropBlock2d":
        return layers.DropBlock2d(0.3, block_size=3, rng=5)
    if name == "GaussianNoise":
        return layers.GaussianNoise(0.5, rng=5)
    return getattr(layers, name)(0.5, rng=5)


NAMES = [
    "Dropout",
    "Dropout2d",
    "GaussianDropout",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "DropPath",
    "DropBlock2d",
    "GaussianNoise",
]
# layers whose training backward differs from the identity (GaussianNoise's
# backward is the identity in both modes: additive noise)
MULTIPLICATIVE = [n for n in NAMES if n != "GaussianNoise"]


@pytest.mark.parametrize("name", MULTIPLICATIVE)
def test_eval_after_a_training_forward_keeps_that_forwards_mask(name):
    layer = make(name)
    x = np.ones(SHAPE)
    layer(x)
    g = np.ones(SHAPE)
    expected = layer.backward(g)
    assert not np.array_equal(expected, g)  # a mask was applied
    layer.eval()
    np.testing.assert_array_equal(layer.backward(g), expected)


@pytest.mark.parametrize("name", MULTIPLICATIVE)
def test_train_after_an_eval_forward_keeps_the_identity(name):
    layer = make(name).eval()
    layer(np.ones(SHAPE))
    layer.train()
    g = np.arange(np.prod(SHAPE), dtype=float).reshape(SHAPE)
    np.testing.assert_array_equal(layer.backward(g), g)


@pytest.mark.parametrize("name", NAMES)
def test_a_gradient_of_another_shape_is_refused(name):
    layer = make(name)
    layer(np.ones(SHAPE))
    with pytest.raises(ValueError, match=r"shape \(2, 4, 6, 5\).*input had shape \(2, 4, 6, 6\)"):
        layer.backward(np.ones((2, 4, 6, 5)))


@pytest.mark.parametrize("name", NAMES)
def test_backward_before_any_forward_says_what_to_do(name):
    with pytest.raises(RuntimeError, match=r"before any forward.*y = layer\(x\)"):
        make(name).backward(np.ones(SHAPE))


def test_a_failed_forward_leaves_the_last_good_forward_recorded():
    layer = layers.Dropout(0.5, rng=5)
    x = np.ones((3, 5))
    layer(x)
    expected = layer.backward(np.ones((3, 5)))
    with pytest.raises(TypeError):
        layer(np.ones((3, 5), dtype=np.int32))  # refused: not floating
    np.testing.assert_array_equal(layer.backward(np.ones((3, 5))), expected)


def test_every_backward_of_one_forward_is_the_same():
    layer = layers.Dropout2d(0.5, rng=1)
    layer(np.ones(SHAPE))
    g = np.ones(SHAPE)
    np.testing.assert_array_equal(layer.backward(g), layer.backward(g))
