"""A complete third-party dropkit backend plugin (``demo``), plus two broken ones.

``demo`` serves NumPy arrays with the array-API reference bits. ``demo_noscale``
forgets the 1/(1-p) rescaling and ``demo_samemask`` reuses one mask for every
call (it ignores the draw counter): the conformance suite must reject both.
"""

import array_api_compat.numpy as xp
import numpy as np

from dropkit import ArrayAPIBackend, BackendRecord, hookimpl, philox


class NoScale(ArrayAPIBackend):
    """Broken on purpose: forgets the 1/(1-p) rescaling in its fused kernel."""

    def dropout_fused(self, x, key, counter, threshold, scale, *, relu=False, out=None):
        """Dropout in one call, minus the scale."""
        keep = np.asarray(self.random_bits(key, counter, x.size)).reshape(x.shape) >= threshold
        if relu:
            keep &= x > 0
        return np.where(keep, x, x.dtype.type(0))  # BUG: forgot "* scale"


class SameMask(ArrayAPIBackend):
    """Broken on purpose: one mask for every call."""

    def random_bits(self, key, counter, n, *, offset=0, device=None):
        """The words of draw 0, whatever the counter."""
        return philox.random_bits(xp, key, 0, n, offset=offset)  # BUG: ignores the counter


@hookimpl
def dropkit_backends():
    """The three backends of this distribution."""
    return [
        BackendRecord("demo", "NumPy, reference bits", lambda: ArrayAPIBackend("demo", xp)),
        BackendRecord("demo_noscale", "broken: no rescaling", lambda: NoScale("demo_noscale", xp)),
        BackendRecord("demo_samemask", "broken: one mask", lambda: SameMask("demo_samemask", xp)),
    ]
