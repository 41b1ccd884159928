"""Summary statistics over seeds: mean, sample standard deviation, 95% t-interval.

The interval is ``mean ± t(0.975, n-1) * s / sqrt(n)``, Student's t interval
for the mean of ``n`` independent runs (it assumes roughly normal values; with
few seeds it is wide, as it should be). The quantiles ``t(0.975, df)`` for
df = 1..30 are the table values (NIST/SEMATECH e-Handbook of Statistical
Methods, section 1.3.6.7.2, "Critical values of the Student's t
distribution", here to 8 decimals as computed by ``scipy.stats.t.ppf``);
beyond df = 30 the Cornish-Fisher expansion of Abramowitz and Stegun 26.7.5
around the normal quantile 1.959964 is used (error below 1e-5 there).

Examples
--------
>>> d = describe([0.60, 0.62, 0.64])
>>> round(d["mean"], 4), round(d["std"], 4), [round(v, 4) for v in d["ci95"]]
(0.62, 0.02, [0.5703, 0.6697])
>>> describe([0.5])["std"] is None
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["T975", "describe", "t_quantile_975"]

#: t(0.975, df) for df = 1..30 (index df - 1).
T975 = (
    12.70620474,
    4.30265273,
    3.18244631,
    2.77644511,
    2.57058184,
    2.44691185,
    2.36462425,
    2.30600414,
    2.26215716,
    2.22813885,
    2.20098516,
    2.17881283,
    2.16036866,
    2.14478669,
    2.13144955,
    2.11990530,
    2.10981558,
    2.10092204,
    2.09302405,
    2.08596345,
    2.07961384,
    2.07387307,
    2.06865761,
    2.06389856,
    2.05953855,
    2.05552944,
    2.05183052,
    2.04840714,
    2.04522964,
    2.04227246,
)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (``df >= 1``).

    Examples
    --------
    >>> t_quantile_975(4)
    2.77644511
    >>> round(t_quantile_975(1000), 4)
    1.9623
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be an integer >= 1, got {df!r}")
    if df <= len(T975):
        return T975[df - 1]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def describe(values: Sequence[float]) -> dict[str, Any]:
    """``n``, ``mean``, sample ``std`` and the 95% t-interval ``ci95`` of ``values``.

    ``std`` and ``ci95`` are None for a single value (no spread can be
    estimated from one seed). ``values`` are kept, as floats.

    Examples
    --------
    >>> describe([1.0, 3.0])["ci95"]
    [-10.70620474, 14.70620474]
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("describe needs at least one value")
    if not all(math.isfinite(v) for v in xs):
        raise ValueError(f"describe needs finite values, got {xs}")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci95": None, "values": xs}
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in xs) / (n - 1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half], "values": xs}
