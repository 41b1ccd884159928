"""Bad input on torch tensors: every error names the argument and says what to do."""

import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

import dropkit_torch.functional  # noqa: E402, F401
from dropkit_torch import nn as dnn  # noqa: E402

import dropkit  # noqa: E402


@pytest.mark.parametrize(
    "x",
    [
        torch.ones(3, dtype=torch.int64),
        torch.ones(3, dtype=torch.bool),
        torch.ones(3, dtype=torch.complex64),
        torch.ones(3, dtype=torch.uint8),
    ],
    ids=["int64", "bool", "complex64", "uint8"],
)
def test_non_floating_tensors_are_refused_with_the_argument_named(x):
    with pytest.raises(TypeError, match=r"x must have a real floating dtype"):
        dropkit.dropout(x, 0.5, rng=0)
    with pytest.raises(TypeError, match=r"x must have a real floating dtype"):
        dnn.Dropout(0.5)(x)
    with pytest.raises(TypeError, match=r"grad must have a real floating dtype"):
        dropkit.dropout_backward(x, 0.5, rng=0)


@pytest.mark.parametrize(
    ("p", "error", "match"),
    [
        (torch.tensor([0.5]), TypeError, r"p must be a real number in \[0, 1\] or a 0-d real"),
        (torch.ones(2, 2), TypeError, "got a tensor of shape"),
        (torch.tensor(0.5 + 0j), TypeError, "0-d real tensor"),
        (torch.tensor(True), TypeError, "0-d real tensor"),
        (torch.tensor(1.5), ValueError, r"must be in \[0, 1\], got 1.5"),
        (torch.tensor(float("nan")), ValueError, "must be in"),
        (-0.1, ValueError, "probability of DROPPING"),
    ],
)
def test_bad_p_is_named(p, error, match):
    with pytest.raises(error, match=match):
        dropkit.dropout(torch.ones(4), p, rng=0)


def test_a_torch_generator_of_another_device_is_refused():
    x = torch.ones(4, device="meta")
    with pytest.raises(ValueError, match=r"rng is a torch.Generator on device cpu, but x is on"):
        dropkit.dropout(x, 0.5, rng=torch.Generator())


def test_in_place_on_a_leaf_that_requires_grad_is_refused():
    w = torch.ones(5, requires_grad=True)
    with pytest.raises(ValueError, match=r"inplace=True on a leaf tensor that requires grad"):
        dropkit.dropout(w, 0.5, rng=0, inplace=True)
    with pytest.raises(ValueError, match=r"inplace=True on a leaf"):
        dnn.Dropout(0.5, inplace=True)(w)
    assert torch.equal(w, torch.ones(5))
    with torch.no_grad():  # no graph: in place is fine
        dropkit.dropout(w, 0.5, rng=0, inplace=True)
    assert not torch.equal(w, torch.ones(5))


def test_a_seed_tensor_as_rng_is_refused_with_the_alternative():
    with pytest.raises(TypeError, match=r"use dropkit_torch\.nn layers"):
        dropkit.dropout(torch.ones(4), 0.5, rng=torch.tensor([1, 2, 3, 4]))


def test_backward_needs_exactly_one_source_of_the_mask():
    with pytest.raises(ValueError, match=r"exactly one of mask= .* or rng="):
        dropkit.dropout_backward(torch.ones(4), 0.5)


def test_numpy_arrays_given_to_the_torch_backend_are_refused():
    import numpy as np

    with pytest.raises(TypeError, match="selected backend 'torch' serves"):
        dropkit.dropout(np.ones(3), 0.5, rng=0, backend="torch")
