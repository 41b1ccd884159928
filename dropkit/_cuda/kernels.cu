
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define DK_DEVICE 1
typedef unsigned int dk_u32;
typedef unsigned short dk_u16;
typedef unsigned long long dk_u64;
typedef long long dk_i64;
#define DK_MULHI(a, b) __umulhi((a), (b))
#define DK_INLINE __device__ __forceinline__
#define DK_UNROLL _Pragma("unroll")
#else
#define DK_DEVICE 0
#include <stdint.h>
#include <string.h>
typedef uint32_t dk_u32;
typedef uint16_t dk_u16;
typedef uint64_t dk_u64;
typedef int64_t dk_i64;
#define DK_MULHI(a, b) ((dk_u32)(((dk_u64)(a) * (dk_u64)(b)) >> 32))
#define DK_INLINE static inline
#define DK_UNROLL
#endif

#ifndef DK_IEEE_F32
#define DK_IEEE_F32 0
#endif

#define DK_RELU 1
#define DK_SCALE 2
#define DK_VEC 4
#define DK_DECAY 8
#define DK_MOMENTUM 16
#define DK_NESTEROV 32

/* ---------------------------------------------------------------- Philox */

/* Philox4x32-10 (Salmon et al., SC'11) on the block with counter c, in place. */
DK_INLINE void dk_philox4x32_10(dk_u32 c[4], dk_u32 k0, dk_u32 k1) {
    DK_UNROLL
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

/* The draw's words from a seed in device memory (int64 key_lo, key_hi, counter_lo,
   counter_hi: the torch op's seed tensor, read without a host round trip), when given. */
DK_INLINE void dk_seed(const dk_i64 *seed, dk_u32 *k0, dk_u32 *k1, dk_u32 *c2, dk_u32 *c3) {
    if (seed) {
        *k0 = (dk_u32)seed[0];
        *k1 = (dk_u32)seed[1];
        *c2 = (dk_u32)seed[2];
        *c3 = (dk_u32)seed[3];
    }
}

/* ------------------------------------------------- bits and vector memory */

#if DK_DEVICE
DK_INLINE float dk_f32(dk_u32 u) { return __uint_as_float(u); }
DK_INLINE dk_u32 dk_bits32(float f) { return __float_as_uint(f); }
/* 4 words at p + 16 b bytes (16-byte aligned). */
DK_INLINE void dk_ld128(const void *p, dk_i64 b, dk_u32 v[4]) {
    uint4 t = ((const uint4 *)p)[b];
    v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
}
DK_INLINE void dk_st128(void *p, dk_i64 b, const dk_u32 v[4]) {
    ((uint4 *)p)[b] = make_uint4(v[0], v[1], v[2], v[3]);
}
/* 2 words at p + 8 b bytes (8-byte aligned). */
DK_INLINE void dk_ld64(const void *p, dk_i64 b, dk_u32 v[2]) {
    uint2 t = ((const uint2 *)p)[b];
    v[0] = t.x; v[1] = t.y;
}
DK_INLINE void dk_st64(void *p, dk_i64 b, const dk_u32 v[2]) {
    ((uint2 *)p)[b] = make_uint2(v[0], v[1]);
}
#else
DK_INLINE float dk_f32(dk_u32 u) { float f; memcpy(&f, &u, 4); return f; }
DK_INLINE dk_u32 dk_bits32(float f) { dk_u32 u; memcpy(&u, &f, 4); return u; }
DK_INLINE void dk_ld128(const void *p, dk_i64 b, dk_u32 v[4]) {
    memcpy(v, (const char *)p + 16 * b, 16);
}
DK_INLINE void dk_st128(void *p, dk_i64 b, const dk_u32 v[4]) {
    memcpy((char *)p + 16 * b, v, 16);
}
DK_INLINE void dk_ld64(const void *p, dk_i64 b, dk_u32 v[2]) {
    memcpy(v, (const char *)p + 8 * b, 8);
}
DK_INLINE void dk_st64(void *p, dk_i64 b, const dk_u32 v[2]) {
    memcpy((char *)p + 8 * b, v, 8);
}
#endif

/* -------------------------------------------------- float32 arithmetic */

#if !DK_IEEE_F32 && !DK_DEVICE
/* The host's imitation of the device's -ftz=true: subnormal -> signed zero. */
DK_INLINE float dk_ftz(float f) {
    dk_u32 u = dk_bits32(f);
    return (u & 0x7F800000u) == 0 ? dk_f32(u & 0x80000000u) : f;
}
#else
#define dk_ftz(f) (f)
#endif

#if DK_IEEE_F32 && DK_DEVICE
DK_INLINE float dk_mul32(float a, float b) {
    float r;
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
DK_INLINE float dk_add32(float a, float b) {
    float r;
    asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
DK_INLINE float dk_sub32(float a, float b) {
    float r;
    asm("sub.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
#else
DK_INLINE float dk_mul32(float a, float b) { return dk_ftz(dk_ftz(a) * dk_ftz(b)); }
DK_INLINE float dk_add32(float a, float b) { return dk_ftz(dk_ftz(a) + dk_ftz(b)); }
DK_INLINE float dk_sub32(float a, float b) { return dk_ftz(dk_ftz(a) - dk_ftz(b)); }
#endif

/* v <= 0 (false for NaN) as the module computes it. */
DK_INLINE int dk_le0_f32(float v) {
#if DK_IEEE_F32
    dk_u32 u = dk_bits32(v);
    return (u << 1) == 0 || ((u >> 31) && (u << 1) <= 0xFF000000u);
#else
    return dk_ftz(v) <= 0.0f;
#endif
}

/* ------------------------------------------- float16 and bfloat16 (bits) */

DK_INLINE int dk_le0_f16(dk_u32 h) {
    return (h & 0x7FFFu) == 0 || ((h & 0x8000u) && (h & 0x7FFFu) <= 0x7C00u);
}

#if !DK_DEVICE
/* Host conversions, exact and round-to-nearest-even (the device has cvt). */
DK_INLINE float dk_h2f(dk_u32 h) {
    dk_u32 sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    if (e == 0x1F) return dk_f32(sign | 0x7F800000u | (m << 13));
    if (e == 0) {
        float f = (float)m * (1.0f / 16777216.0f); /* m * 2**-24, exact */
        return dk_f32(sign | dk_bits32(f));
    }
    return dk_f32(sign | ((e + 112) << 23) | (m << 13));
}
DK_INLINE dk_u32 dk_f2h(float f) {
    dk_u32 u = dk_bits32(f), sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7E00u | ((a >> 13) & 0x3FF);
    if (a >= 0x477FF000u) return sign | 0x7C00u; /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                       /* below 2**-14: subnormal half */
        if (a < 0x33000000u) return sign;        /* below 2**-25: rounds to 0 */
        dk_u32 e = a >> 23, m = (a & 0x7FFFFFu) | 0x800000u, shift = 126 - e;
        dk_u32 r = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (r & 1))) r += 1;
        return sign | r;
    }
    dk_u32 r = a - 0x38000000u; /* rebias 127 -> 15 */
    r = (r + 0xFFFu + ((r >> 13) & 1)) >> 13;
    return sign | r;
}
#endif

/* Correctly rounded float16 product of two bit patterns. */
DK_INLINE dk_u32 dk_mul16(dk_u32 a, dk_u32 b) {
#if DK_DEVICE
    unsigned short r;
    asm("mul.rn.f16 %0, %1, %2;" : "=h"(r) : "h"((unsigned short)a), "h"((unsigned short)b));
    return r;
#else
    return dk_f2h(dk_h2f(a) * dk_h2f(b)); /* exact product, one rounding */
#endif
}

DK_INLINE float dk_bf2f(dk_u32 h) { return dk_f32(h << 16); }
DK_INLINE dk_u32 dk_f2bf(float f) {
    dk_u32 u = dk_bits32(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x40u; /* quiet NaN */
    return (u + 0x7FFFu + ((u >> 16) & 1)) >> 16;
}
DK_INLINE int dk_le0_bf16(dk_u32 h) {
#if DK_IEEE_F32
    return (h & 0x7FFFu) == 0 || ((h & 0x8000u) && (h & 0x7FFFu) <= 0x7F80u);
#else
    return dk_le0_f32(dk_bf2f(h));
#endif
}

/* ------------------------------------ one element: keep ? v * scale : 0 */

DK_INLINE float dk_drop_f32(float v, int keep, float scale, int flags) {
    if ((flags & DK_RELU) && dk_le0_f32(v)) keep = 0;
    if (!keep) return 0.0f;
    return (flags & DK_SCALE) ? dk_mul32(v, scale) : v;
}
DK_INLINE double dk_drop_f64(double v, int keep, double scale, int flags) {
    if ((flags & DK_RELU) && v <= 0.0) keep = 0;
    if (!keep) return 0.0;
    return (flags & DK_SCALE) ? v * scale : v;
}
/* scale: float16 bits */
DK_INLINE dk_u32 dk_drop_f16(dk_u32 v, int keep, dk_u32 scale, int flags) {
    if ((flags & DK_RELU) && dk_le0_f16(v)) keep = 0;
    if (!keep) return 0;
    return (flags & DK_SCALE) ? dk_mul16(v, scale) : v;
}
/* scale: the bfloat16 scale as a float */
DK_INLINE dk_u32 dk_drop_bf16(dk_u32 v, int keep, float scale, int flags) {
    if ((flags & DK_RELU) && dk_le0_bf16(v)) keep = 0;
    if (!keep) return 0;
    return (flags & DK_SCALE) ? dk_f2bf(dk_mul32(dk_bf2f(v), scale)) : v;
}

/* ------------------------------------------------- dropout (fused Philox) */

#define DK_PHILOX_ARGS dk_u32 threshold, dk_u32 k0, dk_u32 k1, dk_u32 c2, dk_u32 c3

DK_INLINE void dk_dropout_f32_range(const float *x, float *y, dk_i64 n, float scale, int flags,
                                    DK_PHILOX_ARGS, dk_i64 start, dk_i64 stride) {
    dk_i64 nblocks = (n + 3) / 4, full = n / 4;
    for (dk_i64 b = start; b < nblocks; b += stride) {
        dk_u32 w[4];
        if ((flags & DK_VEC) && b < full) {
            dk_u32 v[4];
            dk_ld128(x, b, v); /* issued before the rounds: its latency overlaps them */
            dk_block((dk_u64)b, k0, k1, c2, c3, w);
            DK_UNROLL
            for (int k = 0; k < 4; ++k)
                v[k] = dk_bits32(dk_drop_f32(dk_f32(v[k]), w[k] >= threshold, scale, flags));
            dk_st128(y, b, v);
        } else {
            dk_block((dk_u64)b, k0, k1, c2, c3, w);
            DK_UNROLL
            for (int k = 0; k < 4; ++k) {
                dk_i64 j = 4 * b + k;
                if (j < n) y[j] = dk_drop_f32(x[j], w[k] >= threshold, scale, flags);
            }
        }
    }
}

DK_INLINE void dk_dropout_f64_range(const double *x, double *y, dk_i64 n, double scale,
                                    int flags, DK_PHILOX_ARGS, dk_i64 start, dk_i64 stride) {
    dk_i64 nblocks = (n + 3) / 4, full = n / 4;
    for (dk_i64 b = start; b < nblocks; b += stride) {
        dk_u32 w[4];
        if ((flags & DK_VEC) && b < full) {
#if DK_DEVICE
            double2 lo = ((const double2 *)x)[2 * b], hi = ((const double2 *)x)[2 * b + 1];
            double v[4] = {lo.x, lo.y, hi.x, hi.y};
#else
            double v[4];
            memcpy(v, x + 4 * b, 32);
#endif
            dk_block((dk_u64)b, k0, k1, c2, c3, w);
            DK_UNROLL
            for (int k = 0; k < 4; ++k) v[k] = dk_drop_f64(v[k], w[k] >= threshold, scale, flags);
#if DK_DEVICE
            ((double2 *)y)[2 * b] = make_double2(v[0], v[1]);
            ((double2 *)y)[2 * b + 1] = make_double2(v[2], v[3]);
#else
            memcpy(y + 4 * b, v, 32);
#endif
        } else {
            dk_block((dk_u64)b, k0, k1, c2, c3, w);
            DK_UNROLL
            for (int k = 0; k < 4; ++k) {
                dk_i64 j = 4 * b + k;
                if (j < n) y[j] = dk_drop_f64(x[j], w[k] >= threshold, scale, flags);
            }
        }
    }
}

/* 16-bit values (float16 when bf16 == 0, bfloat16 when 1); scale16: float16 bits,
   scalebf: the bfloat16 scale as a float. */
DK_INLINE dk_u32 dk_drop_16(dk_u32 v, int keep, int bf16, dk_u32 scale16, float scalebf,
                            int flags) {
    return bf16 ? dk_drop_bf16(v, keep, scalebf, flags) : dk_drop_f16(v, keep, scale16, flags);
}

DK_INLINE void dk_dropout_16_range(const dk_u16 *x, dk_u16 *y, dk_i64 n, int bf16,
                                   dk_u32 scale16, float scalebf, int flags, DK_PHILOX_ARGS,
                                   dk_i64 start, dk_i64 stride) {
    dk_i64 nblocks = (n + 3) / 4, full = n / 4;
    for (dk_i64 b = start; b < nblocks; b += stride) {
        dk_u32 w[4];
        if ((flags & DK_VEC) && b < full) {
            dk_u32 t[2]; /* element 4b in the low half of t[0] (little-endian) */
            dk_ld64(x, b, t);
            dk_block((dk_u64)b, k0, k1, c2, c3, w);
            dk_u32 v[4] = {t[0] & 0xFFFFu, t[0] >> 16, t[1] & 0xFFFFu, t[1] >> 16};
            DK_UNROLL
            for (int k = 0; k < 4; ++k)
                v[k] = dk_drop_16(v[k], w[k] >= threshold, bf16, scale16, scalebf, flags);
            t[0] = v[0] | (v[1] << 16);
            t[1] = v[2] | (v[3] << 16);
            dk_st64(y, b, t);
        } else {
            dk_block((dk_u64)b, k0, k1, c2, c3, w);
            DK_UNROLL
            for (int k = 0; k < 4; ++k) {
                dk_i64 j = 4 * b + k;
                if (j < n)
                    y[j] = (dk_u16)dk_drop_16(x[j], w[k] >= threshold, bf16, scale16, scalebf,
                                              flags);
            }
        }
    }
}

/* ---------------------------------------------- random words, keep masks */

/* Words of blocks first .. first + nblocks - 1 into out[4 i .. 4 i + 3]. */
DK_INLINE void dk_bits_range(dk_u32 *out, dk_u64 first, dk_i64 nblocks, int flags, dk_u32 k0,
                             dk_u32 k1, dk_u32 c2, dk_u32 c3, dk_i64 start, dk_i64 stride) {
    for (dk_i64 i = start; i < nblocks; i += stride) {
        dk_u32 w[4];
        dk_block(first + (dk_u64)i, k0, k1, c2, c3, w);
        if (flags & DK_VEC) {
            dk_st128(out, i, w);
        } else {
            out[4 * i] = w[0];
            out[4 * i + 1] = w[1];
            out[4 * i + 2] = w[2];
            out[4 * i + 3] = w[3];
        }
    }
}

/* keep[j] = (word of element j >= threshold) for j < n, one byte each. */
DK_INLINE void dk_keep_mask_range(unsigned char *keep, dk_i64 n, int flags, DK_PHILOX_ARGS,
                                  dk_i64 start, dk_i64 stride) {
    dk_i64 nblocks = (n + 3) / 4, full = n / 4;
    for (dk_i64 b = start; b < nblocks; b += stride) {
        dk_u32 w[4];
        dk_block((dk_u64)b, k0, k1, c2, c3, w);
        if ((flags & DK_VEC) && b < full) { /* 4 bytes in one store (4-byte aligned) */
            dk_u32 packed = 0;
            DK_UNROLL
            for (int k = 0; k < 4; ++k) packed |= (dk_u32)(w[k] >= threshold) << (8 * k);
#if DK_DEVICE
            ((dk_u32 *)keep)[b] = packed;
#else
            memcpy(keep + 4 * b, &packed, 4);
#endif
        } else {
            DK_UNROLL
            for (int k = 0; k < 4; ++k) {
                dk_i64 j = 4 * b + k;
                if (j < n) keep[j] = (unsigned char)(w[k] >= threshold);
            }
        }
    }
}

/* ------------------------------------ broadcast masks (channel dropout) */

/* x viewed as (A, B, C), the mask as (A, C): element i uses mask
   [(i / (B C)) C + i % C]. inner = C, block = B C. */
DK_INLINE dk_i64 dk_mask_index(dk_i64 i, dk_i64 block, dk_i64 inner) {
    if (i <= 0xFFFFFFFFll && block <= 0xFFFFFFFFll) { /* 32-bit division is much cheaper */
        dk_u32 u = (dk_u32)i, bl = (dk_u32)block, in = (dk_u32)inner;
        return (dk_i64)((u / bl) * in + u % in);
    }
    return (i / block) * inner + i % inner;
}

#define DK_MASKED_RANGE(NAME, T, ST, DROP)                                                      \
    DK_INLINE void NAME(const T *x, T *y, const unsigned char *keep, dk_i64 n, dk_i64 block,   \
                        dk_i64 inner, ST scale, int flags, dk_i64 start, dk_i64 stride) {      \
        for (dk_i64 i = start; i < n; i += stride)                                              \
            y[i] = (T)DROP(x[i], keep[dk_mask_index(i, block, inner)] != 0, scale, flags);     \
    }
DK_MASKED_RANGE(dk_masked_f32_range, float, float, dk_drop_f32)
DK_MASKED_RANGE(dk_masked_f64_range, double, double, dk_drop_f64)
DK_MASKED_RANGE(dk_masked_f16_range, dk_u16, dk_u32, dk_drop_f16)
DK_MASKED_RANGE(dk_masked_bf16_range, dk_u16, float, dk_drop_bf16)

/* ------------------------------- ReLU-dropout backward: h <= 0 ? 0 : g s */

#define DK_RELU_BACKWARD_RANGE(NAME, T, ST, DROP, LE0)                                          \
    DK_INLINE void NAME(const T *g, const T *h, T *y, dk_i64 n, ST scale, int flags,            \
                        dk_i64 start, dk_i64 stride) {                                          \
        for (dk_i64 i = start; i < n; i += stride) y[i] = (T)DROP(g[i], !LE0(h[i]), scale, flags); \
    }
DK_INLINE int dk_le0_f64(double v) { return v <= 0.0; }
DK_RELU_BACKWARD_RANGE(dk_relu_backward_f32_range, float, float, dk_drop_f32, dk_le0_f32)
DK_RELU_BACKWARD_RANGE(dk_relu_backward_f64_range, double, double, dk_drop_f64, dk_le0_f64)
DK_RELU_BACKWARD_RANGE(dk_relu_backward_f16_range, dk_u16, dk_u32, dk_drop_f16, dk_le0_f16)
DK_RELU_BACKWARD_RANGE(dk_relu_backward_bf16_range, dk_u16, float, dk_drop_bf16, dk_le0_bf16)

/* --------------------------------------------- SGD with momentum, fused */

/* The array-API update of dropkit.experiment.optim.SGD, one rounding per operation:
   g' = g + decay w (if decay); v = momentum v + g'; g'' = g' + momentum v (Nesterov)
   or v; w = w - lr g''. Without momentum, v is left as it is. */
#define DK_SGD_RANGE(NAME, T, MUL, ADD, SUB)                                                    \
    DK_INLINE void NAME(T *w, const T *g, T *v, dk_i64 n, T lr, T momentum, T decay, int flags, \
                        dk_i64 start, dk_i64 stride) {                                          \
        for (dk_i64 i = start; i < n; i += stride) {                                            \
            T wi = w[i], gi = g[i];                                                             \
            if (flags & DK_DECAY) gi = ADD(gi, MUL(decay, wi));                                 \
            if (flags & DK_MOMENTUM) {                                                          \
                T vel = ADD(MUL(momentum, v[i]), gi);                                           \
                v[i] = vel;                                                                     \
                gi = (flags & DK_NESTEROV) ? ADD(gi, MUL(momentum, vel)) : vel;                 \
            }                                                                                   \
            w[i] = SUB(wi, MUL(lr, gi));                                                        \
        }                                                                                       \
    }
DK_INLINE double dk_mul64(double a, double b) { return a * b; }
DK_INLINE double dk_add64(double a, double b) { return a + b; }
DK_INLINE double dk_sub64(double a, double b) { return a - b; }
DK_SGD_RANGE(dk_sgd_f32_range, float, dk_mul32, dk_add32, dk_sub32)
DK_SGD_RANGE(dk_sgd_f64_range, double, dk_mul64, dk_add64, dk_sub64)

/* ------------------------------------------------------ device kernels */

#if DK_DEVICE
#define DK_THREAD ((dk_i64)blockIdx.x * blockDim.x + threadIdx.x)
#define DK_THREADS ((dk_i64)gridDim.x * blockDim.x)

extern "C" {
__global__ void dk_bits(dk_u32 *out, dk_u64 first, dk_i64 nblocks, int flags, dk_u32 k0,
                        dk_u32 k1, dk_u32 c2, dk_u32 c3) {
    dk_bits_range(out, first, nblocks, flags, k0, k1, c2, c3, DK_THREAD, DK_THREADS);
}
/* Kernels taking a draw end with (threshold, k0, k1, c2, c3, seed): seed, if not
   NULL, points to the draw's words in device memory and replaces k0 .. c3. */
#define DK_SEEDED DK_PHILOX_ARGS, const dk_i64 *seed
__global__ void dk_keep_mask(unsigned char *keep, dk_i64 n, int flags, DK_SEEDED) {
    dk_seed(seed, &k0, &k1, &c2, &c3);
    dk_keep_mask_range(keep, n, flags, threshold, k0, k1, c2, c3, DK_THREAD, DK_THREADS);
}
__global__ void dk_dropout_f32(const float *x, float *y, dk_i64 n, float scale, int flags,
                               DK_SEEDED) {
    dk_seed(seed, &k0, &k1, &c2, &c3);
    dk_dropout_f32_range(x, y, n, scale, flags, threshold, k0, k1, c2, c3, DK_THREAD,
                         DK_THREADS);
}
__global__ void dk_dropout_f64(const double *x, double *y, dk_i64 n, double scale, int flags,
                               DK_SEEDED) {
    dk_seed(seed, &k0, &k1, &c2, &c3);
    dk_dropout_f64_range(x, y, n, scale, flags, threshold, k0, k1, c2, c3, DK_THREAD,
                         DK_THREADS);
}
__global__ void dk_dropout_f16(const dk_u16 *x, dk_u16 *y, dk_i64 n, dk_u32 scale, int flags,
                               DK_SEEDED) {
    dk_seed(seed, &k0, &k1, &c2, &c3);
    dk_dropout_16_range(x, y, n, 0, scale, 0.0f, flags, threshold, k0, k1, c2, c3, DK_THREAD,
                        DK_THREADS);
}
__global__ void dk_dropout_bf16(const dk_u16 *x, dk_u16 *y, dk_i64 n, float scale, int flags,
                                DK_SEEDED) {
    dk_seed(seed, &k0, &k1, &c2, &c3);
    dk_dropout_16_range(x, y, n, 1, 0u, scale, flags, threshold, k0, k1, c2, c3, DK_THREAD,
                        DK_THREADS);
}
#define DK_MASKED_KERNEL(NAME, T, ST)                                                           \
    __global__ void NAME(const T *x, T *y, const unsigned char *keep, dk_i64 n, dk_i64 block,  \
                         dk_i64 inner, ST scale, int flags) {                                   \
        NAME##_range(x, y, keep, n, block, inner, scale, flags, DK_THREAD, DK_THREADS);         \
    }
DK_MASKED_KERNEL(dk_masked_f32, float, float)
DK_MASKED_KERNEL(dk_masked_f64, double, double)
DK_MASKED_KERNEL(dk_masked_f16, dk_u16, dk_u32)
DK_MASKED_KERNEL(dk_masked_bf16, dk_u16, float)
#define DK_RELU_BACKWARD_KERNEL(NAME, T, ST)                                                    \
    __global__ void NAME(const T *g, const T *h, T *y, dk_i64 n, ST scale, int flags) {         \
        NAME##_range(g, h, y, n, scale, flags, DK_THREAD, DK_THREADS);                          \
    }
DK_RELU_BACKWARD_KERNEL(dk_relu_backward_f32, float, float)
DK_RELU_BACKWARD_KERNEL(dk_relu_backward_f64, double, double)
DK_RELU_BACKWARD_KERNEL(dk_relu_backward_f16, dk_u16, dk_u32)
DK_RELU_BACKWARD_KERNEL(dk_relu_backward_bf16, dk_u16, float)
#define DK_SGD_KERNEL(NAME, T)                                                                  \
    __global__ void NAME(T *w, const T *g, T *v, dk_i64 n, T lr, T momentum, T decay,          \
                         int flags) {                                                           \
        NAME##_range(w, g, v, n, lr, momentum, decay, flags, DK_THREAD, DK_THREADS);            \
    }
DK_SGD_KERNEL(dk_sgd_f32, float)
DK_SGD_KERNEL(dk_sgd_f64, double)
}
#endif
