"""dropkit: framework-agnostic, provably correct dropout.

``p`` is the probability of DROPPING a unit. The ops take their array namespace
from their inputs (NumPy, CuPy, torch, JAX, ... through array-api-compat); the
masks come from one counter-based generator (Philox4x32-10), so one key gives
the same mask on every backend and for every dtype.

Examples
--------
>>> import numpy as np
>>> import dropkit
>>> y = dropkit.dropout(np.ones(4, dtype=np.float32), 0.5, rng=0)
>>> sorted(set(y.tolist())) in ([0.0, 2.0], [0.0], [2.0])
True
"""

from ._version import __version__ as __version__
from .alpha import (
    alpha_dropout,
    alpha_dropout_backward,
    feature_alpha_dropout,
    feature_alpha_dropout_backward,
)
from .backend import (
    ArrayAPIBackend,
    Backend,
    BackendInfo,
    BackendRecord,
    Capabilities,
    DrawsKeys,
    MasksAndScales,
)
from .channel import (
    channel_noise_shape,
    dropout1d,
    dropout1d_backward,
    dropout2d,
    dropout2d_backward,
    dropout3d,
    dropout3d_backward,
)
from .dropblock import dropblock2d, dropblock2d_backward
from .gaussian import (
    gaussian_dropout,
    gaussian_dropout_backward,
    gaussian_noise,
    gaussian_noise_backward,
)
from .hookspecs import hookimpl
from .layers import (
    AlphaDropout,
    DropBlock2d,
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    DropPath,
    FeatureAlphaDropout,
    GaussianDropout,
    GaussianNoise,
)
from .mc import mc_dropout_forward, mc_dropout_predict
from .ops import (
    RESOLUTION_BITS,
    dropout,
    dropout_backward,
    dropout_mask,
    keep_probability,
    keep_threshold,
    relu_dropout,
    relu_dropout_backward,
)
from .packed import PackedMask, pack_mask, unpack_mask
from .random import Generator, as_generator
from .registry import get_plugin_manager, list_backends
from .selection import get_backend, use_backend
from .structured import drop_path, drop_path_backward

__all__ = [
    "RESOLUTION_BITS",
    "AlphaDropout",
    "ArrayAPIBackend",
    "Backend",
    "BackendInfo",
    "BackendRecord",
    "Capabilities",
    "DrawsKeys",
    "DropBlock2d",
    "DropPath",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "Generator",
    "MasksAndScales",
    "PackedMask",
    "alpha_dropout",
    "alpha_dropout_backward",
    "as_generator",
    "channel_noise_shape",
    "drop_path",
    "drop_path_backward",
    "dropblock2d",
    "dropblock2d_backward",
    "dropout",
    "dropout1d",
    "dropout1d_backward",
    "dropout2d",
    "dropout2d_backward",
    "dropout3d",
    "dropout3d_backward",
    "dropout_backward",
    "dropout_mask",
    "feature_alpha_dropout",
    "feature_alpha_dropout_backward",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_noise",
    "gaussian_noise_backward",
    "get_backend",
    "get_plugin_manager",
    "hookimpl",
    "keep_probability",
    "keep_threshold",
    "list_backends",
    "mc_dropout_forward",
    "mc_dropout_predict",
    "pack_mask",
    "relu_dropout",
    "relu_dropout_backward",
    "unpack_mask",
    "use_backend",
]
