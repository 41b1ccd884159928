"""A complete third-party dropkit backend plugin (``demo``), plus two broken ones.

``demo`` serves NumPy arrays with the array-API reference bits. ``demo_noscale``
forgets the 1/(1-p) rescaling and ``demo_samemask`` reuses one mask for every
call (it ignores the draw counter): the conformance suite must reject both.
"""

import array_api_compat.numpy as xp
import numpy as np

from dropkit import ArrayAPIBackend, BackendRecord, hookimpl, philox


class NoScale(ArrayAPIBackend):
    """Broken on purpose: forgets the 1/(1-p) rescaling in its primitive."""

    def mask_scale(self, x, draw, *, noise_shape, threshold, scale, relu, out):
        """The element-wise primitive, minus the scale (declines the rest)."""
        if draw is None or relu is not False or out is not None or noise_shape != x.shape:
            return None
        keep = np.asarray(self.random_bits(draw, x.size)).reshape(x.shape) >= threshold
        return np.where(keep, x, x.dtype.type(0))  # BUG: forgot "* scale"


class SameMask(ArrayAPIBackend):
    """Broken on purpose: one mask for every call."""

    def random_bits(self, draw, n, *, offset=0, device=None):
        """The words of draw 0, whatever the counter."""
        key, _ = draw
        return philox.random_bits(xp, key, 0, n, offset=offset)  # BUG: ignores the counter


@hookimpl
def dropkit_backends():
    """The three backends of this distribution."""
    return [
        BackendRecord("demo", "NumPy, reference bits", lambda: ArrayAPIBackend("demo", xp)),
        BackendRecord("demo_noscale", "broken: no rescaling", lambda: NoScale("demo_noscale", xp)),
        BackendRecord("demo_samemask", "broken: one mask", lambda: SameMask("demo_samemask", xp)),
    ]
