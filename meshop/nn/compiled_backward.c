/* The backward pass of compiled_kernel.c (included at its end, which defines every helper used
 * here); built with it by meshop/nn/compiled.py. */

/* The backward pass visits sources, not targets: a source's gradients (value, node term,
 * position) are then sums over its out-edges, kept in registers, and the kernel enters only
 * through M_j = sum over the source's edges of g_i h_ij^T (W x H, the target's output gradient
 * and the edge's embedding): dL/dV_j = rowwise <W_k, M_j> + b_k * sum g_i and dL/dW_k += diag(V_j)
 * M_j, so the kernels themselves are never recomputed (two GEMMs per edge instead of three). */

/* Private sums of one thread: the target rows' gradients (thread 0 adds into the outputs), the
 * weights' (always private) and M_j of the source in hand (W x H) */
typedef struct {
    float *target_term, *target_pos, *kernel_w, *kernel_bias, *relative_t, *relative_bias, *m;
} Partial;

static Partial partial_alloc(const Layer *L, const Grads *G, int own_rows) {
    int64_t H = L->hidden, W = L->width, d = L->dim;
    Partial p = {0};
    if (own_rows) {
        p.target_term = G->target_term, p.target_pos = G->target_pos;
    } else {
        p.target_term = calloc(L->n_targets * H, sizeof(float));
        p.target_pos = calloc(L->n_targets * d, sizeof(float));
    }
    p.kernel_w = calloc(W * H, sizeof(float));
    p.kernel_bias = calloc(W, sizeof(float));
    p.relative_t = calloc((d + 1) * H, sizeof(float));
    p.relative_bias = calloc(H, sizeof(float));
    p.m = aligned_alloc(32, W * H * sizeof(float));
    return p;
}

static void add_into(float *to, const float *from, int64_t n) {
    for (int64_t k = 0; k < n; k++) to[k] += from[k];
}

/* ask for the target rows of out-edges [from, to) (in L->targets) now, ahead of their use */
ALWAYS void prefetch_ends(const Layer *L, const Partial *p, const float *grad, int64_t H, int64_t W, int64_t from,
                          int64_t to) {
    for (int64_t e = from; e < to; e++) {
        int64_t i = L->targets[e];
        for (int64_t c = 0; c < H; c += 16) {
            __builtin_prefetch(L->target_term + i * H + c);
            __builtin_prefetch(p->target_term + i * H + c, 1);
        }
        for (int64_t c = 0; c < W; c += 16) __builtin_prefetch(grad + i * W + c);
        __builtin_prefetch(L->target_pos + i * L->dim);
        __builtin_prefetch(p->target_pos + i * L->dim, 1);
    }
}

/* the n-th source's rows and its first AHEAD edges' target rows, the out-edge list after it */
ALWAYS void prefetch_source(const Layer *L, const Partial *p, const float *grad, int64_t n, int64_t H, int64_t W) {
    if (n + 1 < L->n_sources) {
        int64_t next = L->source_order[n + 1], from = L->source_offsets[next];
        for (int64_t e = from; e < min64(L->source_offsets[next + 1], from + AHEAD); e += 8)
            __builtin_prefetch(L->targets + e);
        if (n + 2 < L->n_sources) __builtin_prefetch(L->source_offsets + L->source_order[n + 2]);
    }
    if (n >= L->n_sources) return;
    int64_t j = L->source_order[n];
    for (int64_t c = 0; c < H; c += 16) __builtin_prefetch(L->source_term + j * H + c);
    for (int64_t c = 0; c < W; c += 16) __builtin_prefetch(L->value + j * W + c);
    __builtin_prefetch(L->source_pos + j * L->dim);
    int64_t first = L->source_offsets[j];
    prefetch_ends(L, p, grad, H, W, first, min64(L->source_offsets[j + 1], first + AHEAD));
}

/* gradients of a block's embeddings from their pre-activation gradients g_pre (block x H / 8
 * vectors) of out-edges e.. of a source, scaled offsets rel (block x 4): into the target rows
 * (node term, position), the source's sums g_source (H / 8) and g_x_j (lanes < d) and the
 * relative layer's weights; the offset's gradient W_r^T g_pre from four lane sums (sum4) */
ALWAYS void block_embedding_grads(const Layer *L, int64_t d, int64_t H, int64_t e, int64_t block,
                                  const float *rel, const v8 *g_pre, Partial *p, v8 *g_source, v4 *g_x_j) {
    float inverse_scale = 1.0f / L->scale;
    for (int64_t q = 0; q < block; q++) {
        int64_t i = L->targets[e + q];
        float *t_i = p->target_term + i * H;
        const float *r = rel + 4 * q;
        v8 acc[4] = {{0}};
        for (int64_t v = 0; v < H / 8; v++) {
            v8 g = g_pre[q * (H / 8) + v];
            store8(t_i + 8 * v, load8(t_i + 8 * v) + g);
            g_source[v] += g;
            for (int64_t c = 0; c <= d; c++) acc[c] += load8(L->relative_t + c * H + 8 * v) * g;
        }
        v4 sums = sum4(acc[0], acc[1], acc[2], acc[3]), offset;
        memcpy(&offset, r, sizeof offset);
        float radial = r[d] > 0.0f ? sums[d] / r[d] : 0.0f;  /* |r| adds nothing at r = 0, as in torch */
        v4 g_offset = (sums + radial * offset) * inverse_scale;                    /* lanes < d */
        for (int64_t c = 0; c < d; c++) p->target_pos[i * d + c] -= g_offset[c];
        *g_x_j += g_offset;
    }
    for (int64_t c0 = 0; c0 <= d; c0 += 2) {       /* relative_t (d + 1, H) += rel^T g_pre */
        int two = c0 + 1 <= d;
        for (int64_t v0 = 0; v0 < H / 8; v0 += TILE_VECTORS) {
            int64_t vectors = min64(H / 8 - v0, TILE_VECTORS);
            v8 acc[2][TILE_VECTORS] = {{{0}}};
            for (int64_t q = 0; q < block; q++) {
                float x0 = rel[4 * q + c0], x1 = two ? rel[4 * q + c0 + 1] : 0.0f;
                for (int u = 0; u < TILE_VECTORS; u++) {
                    if (u >= vectors) break;
                    v8 g = g_pre[q * (H / 8) + v0 + u];
                    acc[0][u] += g * x0;
                    acc[1][u] += g * x1;
                }
            }
            for (int u = 0; u < vectors; u++) {
                float *row = p->relative_t + c0 * H + 8 * (v0 + u);
                store8(row, load8(row) + acc[0][u]);
                if (two) store8(row + H, load8(row + H) + acc[1][u]);
            }
        }
    }
}

/* the source's value and kernel gradients from M_j (p->m) and sum g_sum of its targets' g_i; V_j is
   read before dL/dV_j is written, so the value gradient may be written over the values */
ALWAYS void close_source(const Layer *L, int64_t H, int64_t W, int64_t j, const v8 *g_sum, Partial *p, Grads *G) {
    for (int64_t c = 0; c < W; c++) {              /* dL/dW_k += diag(V_j) M_j */
        float v_jc = L->value[j * W + c];
        for (int64_t v = 0; v < H / 8; v++)
            store8(p->kernel_w + c * H + 8 * v,
                   load8(p->kernel_w + c * H + 8 * v) + load8(p->m + c * H + 8 * v) * v_jc);
    }
    for (int64_t v = 0; v < W / 8; v++)            /* dL/db_k += V_j g_sum */
        store8(p->kernel_bias + 8 * v, load8(p->kernel_bias + 8 * v) + load8(L->value + j * W + 8 * v) * g_sum[v]);
    for (int64_t c0 = 0; c0 < W; c0 += 8) {       /* dL/dV_j = rowwise <W_k, M_j> + b_k g_sum */
        v8 dot[8];
        for (int t = 0; t < 8; t++) {
            dot[t] = splat(0.0f);
            for (int64_t v = 0; v < H / 8; v++)
                dot[t] += load8(L->kernel_w + (c0 + t) * H + 8 * v) * load8(p->m + (c0 + t) * H + 8 * v);
        }
        v4 low = sum4(dot[0], dot[1], dot[2], dot[3]), high = sum4(dot[4], dot[5], dot[6], dot[7]);
        v8 rows = __builtin_shufflevector(low, high, 0, 1, 2, 3, 4, 5, 6, 7);
        store8(G->value + j * W + c0, rows + load8(L->kernel_bias + c0) * g_sum[c0 / 8]);
    }
}

ALWAYS void backward_source(const Layer *L, int64_t d, int64_t H, int64_t W, int64_t j, const float *grad,
                            Partial *p, Grads *G) {
    int64_t first = L->source_offsets[j], end = L->source_offsets[j + 1];
    if (first == end) {                            /* no out-edges: its gradients are zero */
        memset(G->value + j * W, 0, W * sizeof(float));
        memset(G->source_term + j * H, 0, H * sizeof(float));
        memset(G->source_pos + j * d, 0, d * sizeof(float));
        return;
    }
    float h[BLOCK * MAX_VECTORS * 8] __attribute__((aligned(32))), slope[BLOCK * MAX_VECTORS * 8],
        g_rows[BLOCK * MAX_VECTORS * 8] __attribute__((aligned(32))),
        g_kernel[BLOCK * MAX_VECTORS * 8] __attribute__((aligned(32))), rel[4 * BLOCK] = {0};
    v8 base[MAX_VECTORS], v_j[MAX_VECTORS], g_h[BLOCK * MAX_VECTORS], g_sum[MAX_VECTORS], g_source[MAX_VECTORS];
    v4 g_x_j = {0};
    const float *x_j = L->source_pos + j * d;
    memset(p->m, 0, W * H * sizeof(float));
    for (int64_t v = 0; v < H / 8; v++) {
        base[v] = load8(L->relative_bias + 8 * v) + load8(L->source_term + j * H + 8 * v);
        g_source[v] = splat(0.0f);
    }
    for (int64_t v = 0; v < W / 8; v++) v_j[v] = load8(L->value + j * W + 8 * v), g_sum[v] = splat(0.0f);
    for (int64_t e = first; e < end; e += BLOCK) {
        int64_t block = min64(end - e, BLOCK);
        if (e + AHEAD < end) prefetch_ends(L, p, grad, H, W, e + AHEAD, min64(end, e + AHEAD + BLOCK));
        for (int64_t q = 0; q < block; q++) {      /* embeddings, slopes, output and kernel gradients */
            int64_t i = L->targets[e + q];
            pre_activation(L, d, H, x_j, L->target_pos + i * d, base, L->target_term + i * H, rel + 4 * q, h + q * H);
            for (int64_t v = 0; v < W / 8; v++) {
                v8 g = load8(grad + i * W + 8 * v);
                store8(g_rows + q * W + 8 * v, g);
                store8(g_kernel + q * W + 8 * v, g * v_j[v]);
                g_sum[v] += g;
            }
        }
        activate(block * H, h, slope);
        memset(g_kernel + block * W, 0, (tile_rows(block) - block) * W * sizeof(float));
        gemm_block_tn(block, W, H / 8, g_rows, h, p->m);                 /* M_j += g^T h */
        gemm_block(block, W, H / 8, g_kernel, W, L->kernel_w, H, g_h);  /* dL/dh = (g V_j) W_k */
        for (int64_t q = 0; q < block; q++)                             /* g_pre = dL/dh GELU' */
            for (int64_t v = 0; v < H / 8; v++) g_h[q * (H / 8) + v] *= load8(slope + q * H + 8 * v);
        block_embedding_grads(L, d, H, e, block, rel, g_h, p, g_source, &g_x_j);
    }
    close_source(L, H, W, j, g_sum, p, G);
    for (int64_t v = 0; v < H / 8; v++) {  /* the relative layer's bias gets every edge's g_pre */
        store8(G->source_term + j * H + 8 * v, g_source[v]);
        store8(p->relative_bias + 8 * v, load8(p->relative_bias + 8 * v) + g_source[v]);
    }
    for (int64_t c = 0; c < d; c++) G->source_pos[j * d + c] = g_x_j[c];
}

void kernel_sum_backward_f32(const Layer *L, const float *grad, Grads *G) {
    int64_t H = L->hidden, W = L->width, d = L->dim;
    Partial partials[L->threads];
    memset(partials, 0, sizeof partials);
    #pragma omp parallel num_threads(L->threads)
    {
        int t = omp_get_thread_num();
        Partial p = partial_alloc(L, G, t == 0);
        #pragma omp for schedule(dynamic, 64)
        for (int64_t n = 0; n < L->n_sources; n++) {
            prefetch_source(L, &p, grad, n + 1, H, W);
            SPECIALIZED(backward_source, L->source_order[n], grad, &p, G);
        }
        partials[t] = p;
        #pragma omp barrier
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < L->n_targets; i++) {
            for (int s = 1; s < omp_get_num_threads(); s++) {
                add_into(G->target_term + i * H, partials[s].target_term + i * H, H);
                add_into(G->target_pos + i * d, partials[s].target_pos + i * d, d);
            }
        }
    }
    for (int s = 0; s < L->threads; s++) {   /* threads that never started left their slot unset */
        if (s > 0 && !partials[s].kernel_w) continue;
        add_into(G->kernel_w, partials[s].kernel_w, W * H);
        add_into(G->kernel_bias, partials[s].kernel_bias, W);
        add_into(G->relative_t, partials[s].relative_t, (d + 1) * H);
        add_into(G->relative_bias, partials[s].relative_bias, H);
        free(partials[s].kernel_w), free(partials[s].kernel_bias), free(partials[s].m);
        free(partials[s].relative_t), free(partials[s].relative_bias);
        if (s > 0) free(partials[s].target_term), free(partials[s].target_pos);
    }
}

/* out-edges of every source from in-edges (CSR by target: offsets (n_targets + 1), sources (E)):
 * source_offsets (n_sources + 1) and targets (E), each source's targets in increasing order (a
 * counting sort; its cursors in 32 bits, E < 2^31, and each write's line asked for 16 edges
 * ahead: 12-13 instead of 17-18 ms at 2.6M edges) */
void transpose_edges(int64_t n_targets, int64_t n_sources, const int64_t *offsets, const int64_t *sources,
                     int64_t *source_offsets, int32_t *targets) {
    int64_t n_edges = offsets[n_targets];
    int32_t *next = calloc(n_sources + 1, sizeof(int32_t));
    for (int64_t e = 0; e < n_edges; e++) next[sources[e] + 1]++;
    for (int64_t j = 0; j < n_sources; j++) next[j + 1] += next[j];
    for (int64_t j = 0; j <= n_sources; j++) source_offsets[j] = next[j];
    for (int64_t i = 0; i < n_targets; i++)
        for (int64_t e = offsets[i]; e < offsets[i + 1]; e++) {
            if (e + 16 < n_edges) __builtin_prefetch(targets + next[sources[e + 16]], 1);
            targets[next[sources[e]]++] = (int32_t)i;
        }
    free(next);
}
