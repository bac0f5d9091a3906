/* One GNO kernel sum, fused, and its backward pass. For every target node i (CSR rows of
 * target-sorted edges), sum over its in-edges j of kappa(h_ij) * V_j with
 *   h_ij   = GELU(W_r [(x_j - x_i) / scale, |x_j - x_i| / scale] + b_r + T_i + S_j)
 *   kappa  = W_k h_ij + b_k
 * the same formula as meshop.nn.BoundEmbedding + KernelTransfer.messages, without the per-edge
 * tensors: 24 edges of a target at a time are embedded into a block that stays in L1, the
 * block's kernels come from a register-blocked GEMM micro-kernel and are multiplied into the sum
 * at once. Targets are visited in the order given (meshop.nn.compiled passes a Morton order of
 * their positions), so consecutive targets share most sources and their rows stay in cache.
 * The backward pass (kernel_sum_backward_f32, compiled_backward.c) visits sources instead, over
 * their out-edges (CSR rows from transpose_edges, in a Morton order), recomputes each block's
 * embeddings and their
 * GELU slopes and takes every gradient from them with two micro-kernel GEMMs per block: the
 * embedding's gradient and M_j = sum g_i h_ij^T, from which the value and kernel-weight
 * gradients follow once per source (see backward_source); the kernels are not recomputed, the
 * source rows' gradients stay in registers and the target rows' go to per-thread private sums.
 * Both passes' GELU take erf as a rational function (no exp); the backward's slope adds the
 * Gaussian density as a power of 2 (profiled: the backward's time is not in its arithmetic, 22
 * instead of 29 ns per edge for the GELU and slope in isolation changed nothing measurable).
 * Hand-written because no library fuses a gather, an MLP and a segment sum (torch-scatter, pyg-lib
 * do the sum alone) and a GEMM call per 24 edges would cost more than the arithmetic.
 * Widths: the hidden width H (padded by the caller) and the state width W are multiples of 8.
 * Built at first use by meshop/nn/compiled.py (cc -O3 -march=native -fopenmp ...). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VECTORS 32 /* widths up to 256 */
#define BLOCK 24       /* edges per block: a multiple of TILE_ROWS (24: the backward pass loads and stores its
                        * M_j once per block; 12 was 4 % slower there) */
#define TILE_ROWS 2    /* 2 x 4 accumulators of 8 floats and the 4 vectors of a b row: 12 of the 16 AVX
                        * registers (3 x 4 would leave none for the row, reloaded per row) */
#define TILE_VECTORS 4
#define AHEAD (2 * BLOCK) /* edges whose source rows are asked for before their block */

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define ALWAYS static inline __attribute__((always_inline))

ALWAYS v8 load8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
ALWAYS void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }
ALWAYS v8 splat(float x) { return (v8){x, x, x, x, x, x, x, x}; }

typedef float v4 __attribute__((vector_size(16)));

ALWAYS int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
/* rows rounded up to the micro-kernel's TILE_ROWS */
ALWAYS int64_t tile_rows(int64_t rows) { return (rows + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS; }

/* (sum of a0's lanes, of a1's, of a2's, of a3's): two rounds of pairwise sums (vhaddps) and the
 * two halves added, instead of 28 scalar additions */
ALWAYS v4 sum4(v8 a0, v8 a1, v8 a2, v8 a3) {
#define PAIRS(x, y) (__builtin_shufflevector(x, y, 0, 2, 8, 10, 4, 6, 12, 14) \
                     + __builtin_shufflevector(x, y, 1, 3, 9, 11, 5, 7, 13, 15))
    v8 t = PAIRS(PAIRS(a0, a1), PAIRS(a2, a3));
#undef PAIRS
    return __builtin_shufflevector(t, t, 0, 1, 2, 3) + __builtin_shufflevector(t, t, 4, 5, 6, 7);
}

/* One layer's inputs. Row-major: source_term (N_s, H), target_term (N_t, H), relative_t
 * (d + 1, H), kernel_t (H, W) = W_k^T, kernel_w (W, H) = W_k, value (N_s, W); d <= 3. */
typedef struct {
    int64_t n_targets, dim, hidden, width;
    int32_t threads;
    float scale;
    const int64_t *order, *offsets, *sources;
    const float *source_pos, *target_pos, *source_term, *target_term, *relative_t, *relative_bias,
        *kernel_t, *kernel_w, *kernel_bias, *value;
    /* backward pass only: the sources' out-edges (transpose_edges) and the order to visit them */
    int64_t n_sources;
    const int64_t *source_order, *source_offsets;
    const int32_t *targets;
    /* nonzero: the means over each target's in-edges (the sums divided by the in-degree, at least 1) */
    int32_t mean;
    /* nonzero: the forward adds its sums (means) into out instead of writing them */
    int32_t accumulate;
} Layer;

/* Gradients of every input of Layer, same shapes (relative_t: (d + 1, H), kernel_w: (W, H)). */
typedef struct {
    int64_t n_sources;
    float *value, *source_term, *source_pos, *target_term, *target_pos, *kernel_w, *kernel_bias,
        *relative_t, *relative_bias;
} Grads;

/* 1 / x for normal x: the approximate reciprocal and one Newton step, relative error < 1e-7
 * (a division would take longer than the rest of the GELU) */
ALWAYS v8 reciprocal(v8 x) {
#ifdef __AVX__
    v8 y = __builtin_ia32_rcpps256(x);
    return y * (2.0f - x * y);
#else
    return 1.0f / x;
#endif
}

#define GELU_CLAMP 5.65685425f /* 4 sqrt 2: erf(4) is 1 to 1.6e-8 */

ALWAYS v8 clamp_gelu(v8 x) {
#ifdef __AVX__
    return __builtin_ia32_maxps256(__builtin_ia32_minps256(x, splat(GELU_CLAMP)), splat(-GELU_CLAMP));
#else
    return x > GELU_CLAMP ? splat(GELU_CLAMP) : x < -GELU_CLAMP ? splat(-GELU_CLAMP) : x;
#endif
}

/* Phi(c) for c clamped to +-GELU_CLAMP, x2 = c^2: erf as a rational function, no exp (Eigen's and
 * XLA's float erf: odd numerator of degree 13 over an even denominator of degree 8 in
 * z = c / sqrt 2, here in c^2 with the 1 / sqrt 2 and Phi's 1 / 2 in the coefficients), within
 * 2.1e-7 of float64 on [-12, 12] */
ALWAYS v8 normal_cdf(v8 c, v8 x2) {
    v8 p = splat(-1.5059950602501885e-12f);
    p = p * x2 + 3.061199412650202e-10f;
    p = p * x2 - 4.642651039253876e-08f;
    p = p * x2 - 2.515756170991271e-06f;
    p = p * x2 - 6.496460735158676e-05f;
    p = p * x2 - 5.223043900778214e-04f;
    p = p * x2 - 5.690807157595012e-03f;
    v8 q = splat(-9.10379490406225e-07f);
    q = q * x2 - 2.6671756909863124e-05f;
    q = q * x2 - 4.207067435955075e-04f;
    q = q * x2 - 3.68666458360234e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return c * p * reciprocal(q) + 0.5f;
}

/* GELU(x) = x Phi(x): the forward pass, which needs no slope (18 operations per vector) */
ALWAYS v8 gelu_rational(v8 x) {
    v8 c = clamp_gelu(x);
    return x * normal_cdf(c, c * c);
}

/* GELU(x) and *slope = GELU'(x) = Phi(x) + x phi(x), x clamped as in gelu_rational (there x phi
 * is < 2.5e-7): phi(c) = e^(-c^2 / 2) / sqrt(2 pi) = 2^y, y = -c^2 / (2 ln 2) in [-11.6, 0] (no
 * underflow, no range check), as 2^n times a degree-5 polynomial of 2^(y - n), n = y rounded,
 * with 1 / sqrt(2 pi) in its coefficients (relative error 3.4e-7): the backward pass */
ALWAYS v8 gelu(v8 x, v8 *slope) {
    v8 c = clamp_gelu(x), x2 = c * c;
    v8 cdf = normal_cdf(c, x2);
    v8 y = x2 * -0.72134752044448170f;
    v8i n = __builtin_convertvector(y - 0.5f, v8i);                    /* rounded: y <= 0 */
    v8 f = y - __builtin_convertvector(n, v8);
    v8 p = splat(5.152603262104094e-04f);
    p = p * f + 3.8571865297853947e-03f;
    p = p * f + 2.214803360402584e-02f;
    p = p * f + 9.583497047424316e-02f;
    p = p * f + 2.7652543783187866e-01f;
    p = p * f + 3.989422917366028e-01f;
    *slope = cdf + c * (p * (v8)((n + 127) << 23));
    return x * cdf;
}

/* keeps a b row's vectors in registers: gcc would otherwise fold their loads into every FMA,
 * loading each TILE_ROWS times (the loads, not the FMAs, then bound the micro-kernel) */
ALWAYS void in_registers(v8 *row) {
    v8 r0 = row[0], r1 = row[1], r2 = row[2], r3 = row[3];   /* TILE_VECTORS of them */
    __asm__("" : "+x"(r0), "+x"(r1), "+x"(r2), "+x"(r3));
    row[0] = r0, row[1] = r1, row[2] = r2, row[3] = r3;
}

/* out (rows x nb vectors) = a (rows x k, row stride lda) @ b (k x 8 nb, row stride ldb), rows
 * rounded up to TILE_ROWS: TILE_ROWS x TILE_VECTORS accumulators, each b row loaded once per
 * TILE_ROWS rows, as in a GEMM micro-kernel */
ALWAYS void gemm_block(int64_t rows, int64_t k, int64_t nb, const float *a, int64_t lda, const float *b,
                       int64_t ldb, v8 *out) {
    for (int64_t c = 0; c < nb; c += TILE_VECTORS) {
        int64_t vectors = nb - c < TILE_VECTORS ? nb - c : TILE_VECTORS;
        for (int64_t q0 = 0; q0 < rows; q0 += TILE_ROWS) {
            v8 acc[TILE_ROWS][TILE_VECTORS] = {{{0}}};
            for (int64_t m = 0; m < k; m++) {
                v8 row[TILE_VECTORS];
                for (int u = 0; u < TILE_VECTORS; u++)
                    row[u] = u < vectors ? load8(b + m * ldb + 8 * (c + u)) : splat(0.0f);
                in_registers(row);
                for (int t = 0; t < TILE_ROWS; t++) {
                    float x = a[(q0 + t) * lda + m];
                    for (int u = 0; u < TILE_VECTORS; u++) acc[t][u] += row[u] * x;
                }
            }
            for (int t = 0; t < TILE_ROWS; t++)
                for (int u = 0; u < vectors; u++) out[(q0 + t) * nb + c + u] = acc[t][u];
        }
    }
}

/* c rows r0 .. r0 + count of c (m x 8 nb, row-major) += a^T b, vectors v0 .. v0 + vectors:
 * count x vectors accumulators, each b row loaded once */
ALWAYS void gemm_tile_tn(int64_t rows, int64_t m, int64_t nb, const float *a, const float *b, float *c, int64_t r0,
                         int count, int64_t v0, int vectors) {
    v8 acc[TILE_ROWS][TILE_VECTORS];
    for (int t = 0; t < count; t++)
        for (int u = 0; u < vectors; u++) acc[t][u] = load8(c + (r0 + t) * 8 * nb + 8 * (v0 + u));
    for (int64_t q = 0; q < rows; q++) {
        v8 row[TILE_VECTORS];
        for (int u = 0; u < vectors; u++) row[u] = load8(b + q * 8 * nb + 8 * (v0 + u));
        in_registers(row);
        for (int t = 0; t < count; t++) {
            float x = a[q * m + r0 + t];
            for (int u = 0; u < vectors; u++) acc[t][u] += row[u] * x;
        }
    }
    for (int t = 0; t < count; t++)
        for (int u = 0; u < vectors; u++) store8(c + (r0 + t) * 8 * nb + 8 * (v0 + u), acc[t][u]);
}

/* c (m x 8 nb, row-major) += a^T b for a (rows x m), b (rows x 8 nb): tiles of TILE_ROWS x
 * TILE_VECTORS accumulators as in gemm_block (the tiles' sizes constant where they can be) */
ALWAYS void gemm_block_tn(int64_t rows, int64_t m, int64_t nb, const float *a, const float *b, float *c) {
    for (int64_t v0 = 0; v0 < nb; v0 += TILE_VECTORS) {
        int vectors = nb - v0 < TILE_VECTORS ? nb - v0 : TILE_VECTORS;
        int64_t r0 = 0;
        if (vectors == TILE_VECTORS)
            for (; r0 + TILE_ROWS <= m; r0 += TILE_ROWS)
                gemm_tile_tn(rows, m, nb, a, b, c, r0, TILE_ROWS, v0, TILE_VECTORS);
        for (; r0 < m; r0++) gemm_tile_tn(rows, m, nb, a, b, c, r0, 1, v0, vectors);
    }
}

/* The scaled offset rel (d + 1) of an edge from the node at x_from to the node at x_to and its
 * length; the embedding's pre-activation base + row + W_r rel (base: the relative layer's bias
 * and one end's node term, row: the other end's) into pre (H). */
ALWAYS void pre_activation(const Layer *L, int64_t d, int64_t H, const float *x_from, const float *x_to,
                           const v8 *base, const float *row, float *rel, float *pre) {
    float norm2 = 0.0f, inverse_scale = 1.0f / L->scale;
    for (int64_t c = 0; c < d; c++) {
        rel[c] = (x_from[c] - x_to[c]) * inverse_scale;
        norm2 += rel[c] * rel[c];
    }
    rel[d] = sqrtf(norm2);
    for (int64_t v = 0; v < H / 8; v++) {
        v8 sum = base[v] + load8(row + 8 * v);
        for (int64_t c = 0; c <= d; c++) sum += load8(L->relative_t + c * H + 8 * v) * rel[c];
        store8(pre + 8 * v, sum);
    }
}

/* h (n floats, n a multiple of 8) = GELU(h), its slope into slope when given: a block's
 * embeddings at once, after their pre-activations (one GELU is a chain of ~20 dependent
 * operations: many side by side keep both FMA pipes busy, one edge's four would not) */
ALWAYS void activate(int64_t n, float *h, float *slope) {
    for (int64_t k = 0; k < n; k += 8) {
        if (slope) {
            v8 d;
            store8(h + k, gelu(load8(h + k), &d));
            store8(slope + k, d);
        } else {
            store8(h + k, gelu_rational(load8(h + k)));
        }
    }
}

/* One block of up to BLOCK in-edges of target i from edge e: embeddings h (BLOCK x H, zero rows
 * up to the micro-kernel's tile), offsets rel (BLOCK x 4) and kernels (BLOCK x W / 8 vectors,
 * without the bias) */
ALWAYS void block_kernels(const Layer *L, int64_t d, int64_t H, int64_t W, int64_t i, int64_t e, int64_t block,
                          const v8 *base, float *rel, float *h, v8 *kernel) {
    const float *x_i = L->target_pos + i * d;
    for (int64_t q = 0; q < block; q++) {
        int64_t j = L->sources[e + q];
        pre_activation(L, d, H, L->source_pos + j * d, x_i, base, L->source_term + j * H, rel + 4 * q, h + q * H);
    }
    activate(block * H, h, NULL);
    memset(h + block * H, 0, (tile_rows(block) - block) * H * sizeof(float));
    gemm_block(block, H, W / 8, h, H, L->kernel_t, W, kernel);
}

/* ask for the source rows of edges [from, to) now (random reads, ahead of their use) */
ALWAYS void prefetch_rows(const Layer *L, int64_t H, int64_t W, int64_t from, int64_t to) {
    for (int64_t e = from; e < to; e++) {
        int64_t j = L->sources[e];
        for (int64_t c = 0; c < H; c += 16) __builtin_prefetch(L->source_term + j * H + c);
        for (int64_t c = 0; c < W; c += 16) __builtin_prefetch(L->value + j * W + c);
        __builtin_prefetch(L->source_pos + j * L->dim);
    }
}

/* ask for the rows of the n-th target to visit and the source rows of its first AHEAD edges (the
 * block loop asks for the rest, AHEAD edges ahead: all of a high-degree target's rows at once
 * would evict the ones in use), and for the edge list of the target after it */
ALWAYS void prefetch_target(const Layer *L, int64_t n, int64_t H, int64_t W) {
    if (n + 1 < L->n_targets) {
        int64_t next = L->order ? L->order[n + 1] : n + 1;
        for (int64_t e = L->offsets[next]; e < min64(L->offsets[next + 1], L->offsets[next] + AHEAD); e += 8)
            __builtin_prefetch(L->sources + e);
        if (n + 2 < L->n_targets) __builtin_prefetch(L->offsets + (L->order ? L->order[n + 2] : n + 2));
    }
    if (n >= L->n_targets) return;
    int64_t i = L->order ? L->order[n] : n;
    for (int64_t c = 0; c < H; c += 16) __builtin_prefetch(L->target_term + i * H + c);
    __builtin_prefetch(L->target_pos + i * L->dim);
    prefetch_rows(L, H, W, L->offsets[i], min64(L->offsets[i + 1], L->offsets[i] + AHEAD));
}

/* within a target: the rows of the edges AHEAD after the block from edge e */
ALWAYS void prefetch_ahead(const Layer *L, int64_t H, int64_t W, int64_t i, int64_t e) {
    int64_t end = L->offsets[i + 1];
    if (e + AHEAD < end) prefetch_rows(L, H, W, e + AHEAD, min64(end, e + AHEAD + BLOCK));
}

/* the in-degree of target i, at least 1 (the divisor of its mean) */
ALWAYS float in_degree(const Layer *L, int64_t i) {
    int64_t edges = L->offsets[i + 1] - L->offsets[i];
    return edges > 0 ? (float)edges : 1.0f;
}

ALWAYS void target_base(const Layer *L, int64_t H, int64_t i, v8 *base) {
    for (int64_t v = 0; v < H / 8; v++)
        base[v] = load8(L->relative_bias + 8 * v) + load8(L->target_term + i * H + 8 * v);
}

/* F(L, d, H, W, ...) with the widths of the benchmark and the bundled models as constants (the
 * compiler then unrolls the loops over them), else as variables */
#define SPECIALIZED(F, ...)                                                                          \
    if (L->dim == 3 && L->hidden == 32 && L->width == 32) F(L, 3, 32, 32, __VA_ARGS__);            \
    else if (L->dim == 3 && L->hidden == 32 && L->width == 48) F(L, 3, 32, 48, __VA_ARGS__);       \
    else if (L->dim == 3 && L->hidden == 16 && L->width == 16) F(L, 3, 16, 16, __VA_ARGS__);       \
    else F(L, L->dim, L->hidden, L->width, __VA_ARGS__)

ALWAYS void forward_target(const Layer *L, int64_t d, int64_t H, int64_t W, int64_t i, float *out) {
    float h[BLOCK * MAX_VECTORS * 8] __attribute__((aligned(32))), rel[4 * BLOCK];
    v8 base[MAX_VECTORS], acc[MAX_VECTORS], kernel[BLOCK * MAX_VECTORS];
    target_base(L, H, i, base);
    for (int64_t v = 0; v < W / 8; v++) acc[v] = splat(0.0f);
    for (int64_t e = L->offsets[i]; e < L->offsets[i + 1]; e += BLOCK) {
        int64_t block = min64(L->offsets[i + 1] - e, BLOCK);
        prefetch_ahead(L, H, W, i, e);
        block_kernels(L, d, H, W, i, e, block, base, rel, h, kernel);
        for (int64_t q = 0; q < block; q++) {
            const float *v_j = L->value + L->sources[e + q] * W;
            for (int64_t v = 0; v < W / 8; v++)
                acc[v] += (kernel[q * (W / 8) + v] + load8(L->kernel_bias + 8 * v)) * load8(v_j + 8 * v);
        }
    }
    v8 divisor = splat(L->mean ? in_degree(L, i) : 1.0f);    /* a division, as torch's mean takes it */
    for (int64_t v = 0; v < W / 8; v++)
        store8(out + i * W + 8 * v, L->accumulate ? load8(out + i * W + 8 * v) + acc[v] / divisor : acc[v] / divisor);
}

void kernel_sum_f32(const Layer *L, float *out) {
    #pragma omp parallel for schedule(dynamic, 64) num_threads(L->threads)
    for (int64_t n = 0; n < L->n_targets; n++) {
        int64_t i = L->order ? L->order[n] : n;
        prefetch_target(L, n + 1, L->hidden, L->width);
        SPECIALIZED(forward_target, i, out);
    }
}

/* offsets (n + 1) of the CSR rows of n nodes from the sorted targets (E) of their in-edges */
void csr_offsets(int64_t n_edges, int64_t n, const int64_t *targets, int64_t *offsets) {
    int64_t row = 0;
    for (int64_t e = 0; e < n_edges; e++)
        while (row <= targets[e]) offsets[row++] = e;
    while (row <= n) offsets[row++] = n_edges;
}

/* keys (n,) of Morton order (bits interleaved, 63 / d per axis) of pos (n, d), d <= 3 */
void morton_keys(int64_t n, int64_t d, const float *pos, int64_t *keys) {
    float low[3], high[3];
    int bits = 63 / d;
    for (int64_t c = 0; c < d; c++) low[c] = INFINITY, high[c] = -INFINITY;
    for (int64_t k = 0; k < n * d; k++) {
        low[k % d] = fminf(low[k % d], pos[k]);
        high[k % d] = fmaxf(high[k % d], pos[k]);
    }
    for (int64_t k = 0; k < n; k++) {
        uint64_t key = 0, cell[3];
        for (int64_t c = 0; c < d; c++) {
            float span = high[c] > low[c] ? high[c] - low[c] : 1.0f;
            cell[c] = (uint64_t)((pos[k * d + c] - low[c]) / span * (float)((1ull << bits) - 1));
        }
        for (int b = bits - 1; b >= 0; b--)
            for (int64_t c = 0; c < d; c++) key = key << 1 | (cell[c] >> b & 1);
        keys[k] = (int64_t)key;
    }
}

/* the backward pass, in its own file for its size; one translation unit with the helpers above */
#include "compiled_backward.c"
#include "compiled_graphs.c"
#include "compiled_potential.c"
