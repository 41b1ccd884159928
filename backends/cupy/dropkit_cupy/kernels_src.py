"""CUDA C source of the Philox4x32-10 kernels, shared with a CPU test harness.

The same text compiles with NVRTC (inside CuPy's kernels) and with a host C
compiler (the tests build it with ``cc`` and compare it with the array-API
reference, so the device code's arithmetic is checked on machines without a
GPU). ``DK_MULHI`` is ``__umulhi`` on the device and a 64-bit product on the host.
"""

from __future__ import annotations

__all__ = ["BITS_OPERATION", "DROPOUT_OPERATION", "PHILOX_SOURCE"]

PHILOX_SOURCE = r"""
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
typedef unsigned int dk_u32;
typedef unsigned long long dk_u64;
#define DK_MULHI(a, b) __umulhi((a), (b))
#define DK_INLINE __device__ __forceinline__
#else
#include <stdint.h>
typedef uint32_t dk_u32;
typedef uint64_t dk_u64;
#define DK_MULHI(a, b) ((dk_u32)(((dk_u64)(a) * (dk_u64)(b)) >> 32))
#define DK_INLINE static inline
#endif

/* Philox4x32-10 (Salmon et al., SC'11) on the block with counter c, in place. */
DK_INLINE void dk_philox4x32_10(dk_u32 c[4], dk_u32 k0, dk_u32 k1) {
    for (int r = 0; r < 10; ++r) {
        if (r) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        dk_u32 hi0 = DK_MULHI(0xD2511F53u, c[0]);
        dk_u32 lo0 = 0xD2511F53u * c[0];
        dk_u32 hi1 = DK_MULHI(0xCD9E8D57u, c[2]);
        dk_u32 lo1 = 0xCD9E8D57u * c[2];
        dk_u32 n0 = hi1 ^ c[1] ^ k0;
        dk_u32 n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
}

/* The four words of block b for the draw (key = k1:k0, counter = c3:c2). */
DK_INLINE void dk_block(dk_u64 b, dk_u32 k0, dk_u32 k1, dk_u32 c2, dk_u32 c3, dk_u32 w[4]) {
    w[0] = (dk_u32)b;
    w[1] = (dk_u32)(b >> 32);
    w[2] = c2;
    w[3] = c3;
    dk_philox4x32_10(w, k0, k1);
}
"""

#: Body of the bits kernel; ``i`` is the thread's block index (CuPy's loop variable).
BITS_OPERATION = r"""
    dk_u32 w[4];
    dk_block(first + (dk_u64)i, k0, k1, c2, c3, w);
    out[4 * i] = w[0];
    out[4 * i + 1] = w[1];
    out[4 * i + 2] = w[2];
    out[4 * i + 3] = w[3];
"""

#: Body of the dropout kernel: block ``i`` covers elements 4i .. 4i+3 of x and y.
DROPOUT_OPERATION = r"""
    dk_u32 w[4];
    dk_block((dk_u64)i, k0, k1, c2, c3, w);
    for (int k = 0; k < 4; ++k) {
        long long j = 4 * (long long)i + k;
        if (j < n) {
            T v = x[j];
            bool keep = w[k] >= threshold;
            if (relu) keep = keep && !(v <= (T)0.0f);  /* NaN kept, as torch.relu */
            y[j] = keep ? (T)(v * scale) : (T)0.0f;
        }
    }
"""
