"""Collect the Flax and Equinox modules (their doctests) only where those are installed.

Both are optional extras of dropkit-jax (``[flax]``, ``[equinox]``); without them
these modules cannot be imported, and their tests in ``tests/`` skip with the reason.
"""

import importlib.util

collect_ignore = [
    f"dropkit_jax/{module}"
    for module, needs in (("nnx.py", "flax"), ("equinox.py", "equinox"))
    if importlib.util.find_spec(needs) is None
]
