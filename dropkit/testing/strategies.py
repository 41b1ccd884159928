"""Hypothesis strategies for dropout inputs, reusable by embedding libraries.

Examples
--------
>>> from hypothesis import given
>>> @given(drop_probabilities())
... def check(p):
...     assert 0 <= p < 1
>>> check()
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dropkit.checks import to_numpy

__all__ = [
    "FLOAT_DTYPES",
    "arrays",
    "drop_probabilities",
    "float_dtypes",
    "keys",
    "shapes",
    "to_namespace",
    "to_numpy",
    "widest_float",
]

FLOAT_DTYPES = ("float16", "float32", "float64")


def float_dtypes(xp: Any) -> list[str]:
    """Names of the float dtypes namespace ``xp`` supports here.

    float16 is not in the standard; float64 may be off (JAX without x64): the
    namespace's inspection API decides where it has one.
    """
    names = [name for name in FLOAT_DTYPES if hasattr(xp, name)]
    info = getattr(xp, "__array_namespace_info__", None)
    if info is not None:
        supported = info().dtypes(kind="real floating")
        names = [n for n in names if n == "float16" or n in supported]
    return names


def widest_float(xp: Any) -> str:
    """The widest float dtype the namespace supports here (float32 for JAX without x64)."""
    return float_dtypes(xp)[-1]


def drop_probabilities(*, include_one: bool = False) -> st.SearchStrategy[float]:
    """Drop probabilities in [0, 1) (or [0, 1]), edges and common values included."""
    edges = [0.0, 0.1, 0.2, 0.5, 0.8, 0.9, 0.99] + ([1.0] if include_one else [])
    return st.one_of(
        st.sampled_from(edges),
        st.floats(0.0, 1.0, exclude_max=not include_one, allow_nan=False),
    )


def keys() -> st.SearchStrategy[int]:
    """64-bit generator keys."""
    return st.integers(0, 2**64 - 1)


def shapes(
    *, min_dims: int = 0, max_dims: int = 4, max_side: int = 8
) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes, empty and 0-d ones included."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side)


#: The bit widths of the dtypes Hypothesis draws floats for.
_FLOAT_WIDTHS: dict[str, Literal[16, 32, 64]] = {"float16": 16, "float32": 32, "float64": 64}


def arrays(
    dtype: str = "float32", shape: Any = None, *, finite: bool = True
) -> st.SearchStrategy[np.ndarray]:
    """NumPy float arrays (convert with :func:`to_namespace`)."""
    width = _FLOAT_WIDTHS.get(np.dtype(dtype).name)
    if width is None:
        raise ValueError(
            f"arrays draws float16, float32 or float64 arrays, got dtype {dtype!r}; "
            "cast the drawn array for other dtypes"
        )
    elements = st.floats(-1e3, 1e3, width=width)
    if not finite:
        elements = st.one_of(elements, st.sampled_from([np.inf, -np.inf, np.nan, 0.0, -0.0]))
    return hnp.arrays(np.dtype(dtype), shape if shape is not None else shapes(), elements=elements)


def to_namespace(xp: Any, a: np.ndarray) -> Any:
    """Copy a NumPy array into namespace ``xp`` (default device)."""
    return xp.asarray(a, copy=True)
