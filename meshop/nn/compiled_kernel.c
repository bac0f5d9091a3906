/* One GNO kernel sum for inference, fused: for every target node i (CSR rows of target-sorted
 * edges), sum over its in-edges j of kappa(h_ij) * V_j with
 *   h_ij   = GELU(W_r [(x_j - x_i) / scale, |x_j - x_i| / scale] + b_r + T_i + S_j)
 *   kappa  = W_k h_ij + b_k
 * the same formula as meshop.nn.BoundEmbedding + KernelTransfer.messages, without the per-edge
 * tensors: each edge's embedding and kernel live in registers / L1. Hand-written because no
 * library fuses a gather, an MLP and a segment sum (torch-scatter, pyg-lib do the sum alone).
 * Built at first use by meshop/nn/compiled.py (cc -O3 -march=native -ffast-math -fopenmp). */
#include <math.h>
#include <stdint.h>

#include <string.h>

#define MAX_WIDTH 256
#define BLOCK 8
#define AHEAD 16  /* edges ahead whose source rows are prefetched */

typedef float v8 __attribute__((vector_size(32)));
static inline v8 load8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

static inline void prefetch_row(const float *row, int64_t length) {
    for (int64_t c = 0; c < length; c += 16) __builtin_prefetch(row + c);  /* 64-byte lines */
}

/* erf as in PyTorch's vectorized float kernel (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7) */
static inline float erf_as(float x) {
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float r = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t
               + 0.254829592f) * t;
    float y = 1.0f - r * expf(-a * a);
    return copysignf(y, x);
}

/* h (block x hidden): the embeddings of a block of edges to target i, sources js */
static void embed_block(int64_t block, const int64_t *js, int64_t i, const float *source_pos,
                        const float *target_pos, int64_t dim, float scale, const float *source_term,
                        const float *target_term, const float *relative_t, const float *relative_bias,
                        int64_t hidden, float *h) {
    const float *t_i = target_term + i * hidden;
    for (int64_t q = 0; q < block; q++) {
        float x[8], norm2 = 0.0f, *h_q = h + q * hidden;
        for (int64_t c = 0; c < dim; c++) {
            x[c] = (source_pos[js[q] * dim + c] - target_pos[i * dim + c]) / scale;
            norm2 += x[c] * x[c];
        }
        x[dim] = sqrtf(norm2);
        const float *s_j = source_term + js[q] * hidden;
        for (int64_t k = 0; k < hidden; k++) h_q[k] = relative_bias[k];
        for (int64_t c = 0; c <= dim; c++)
            for (int64_t k = 0; k < hidden; k++) h_q[k] += relative_t[c * hidden + k] * x[c];
        for (int64_t k = 0; k < hidden; k++) h_q[k] += t_i[k] + s_j[k];
    }
    for (int64_t k = 0; k < block * hidden; k++)
        h[k] = 0.5f * h[k] * (1.0f + erf_as(h[k] * 0.70710678118654752f));
}

void kernel_sum_f32(int64_t n_targets, const int64_t *offsets, const int64_t *sources,
                    const float *source_pos, const float *target_pos, int64_t dim, float scale,
                    const float *source_term, const float *target_term,
                    const float *relative_t, const float *relative_bias,
                    const float *kernel_t, const float *kernel_bias,
                    const float *value, int64_t hidden, int64_t width, int threads, float *out) {
    int64_t n_edges = offsets[n_targets];
    #pragma omp parallel for schedule(dynamic, 64) num_threads(threads)
    for (int64_t i = 0; i < n_targets; i++) {
        float acc[MAX_WIDTH], h[BLOCK * MAX_WIDTH];
        int64_t js[BLOCK];
        for (int64_t c = 0; c < width; c++) acc[c] = 0.0f;
        for (int64_t e = offsets[i]; e < offsets[i + 1]; e += BLOCK) {
            int64_t block = offsets[i + 1] - e < BLOCK ? offsets[i + 1] - e : BLOCK;
            for (int64_t q = 0; q < BLOCK; q++) js[q] = sources[e + (q < block ? q : 0)];
            /* the source rows are random reads: ask for the next block's rows now (their latency,
               not the arithmetic, bounded this loop: ~half its time waited on source_term rows) */
            for (int64_t q = e + AHEAD; q < e + AHEAD + BLOCK && q < n_edges; q++) {
                prefetch_row(source_term + sources[q] * hidden, hidden);
                prefetch_row(value + sources[q] * width, width);
                __builtin_prefetch(source_pos + sources[q] * dim);
            }
            for (int64_t k = block * hidden; k < BLOCK * hidden; k++) h[k] = 0.0f;  /* tail */
            embed_block(block, js, i, source_pos, target_pos, dim, scale, source_term, target_term,
                        relative_t, relative_bias, hidden, h);
            /* kappa = W_k h + b_k for BLOCK edges at once, 8 channels per register: each weight
               row is loaded once per block (register blocking, as in a GEMM micro-kernel) */
            for (int64_t b = 0; b < width; b += 8) {
                v8 part[BLOCK] = {{0}};
                for (int64_t k = 0; k < hidden; k++) {
                    v8 w = load8(kernel_t + k * width + b);
                    for (int q = 0; q < BLOCK; q++) part[q] += w * h[q * hidden + k];
                }
                v8 sum = load8(acc + b), bias = load8(kernel_bias + b);
                for (int64_t q = 0; q < block; q++) sum += (part[q] + bias) * load8(value + js[q] * width + b);
                store8(acc + b, sum);
            }
        }
        for (int64_t c = 0; c < width; c++) out[i * width + c] = acc[c];
    }
}
