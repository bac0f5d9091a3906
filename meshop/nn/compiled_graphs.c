/* Neighbour-graph assembly for meshop.geometry.neighbors.radius_graph, included by
 * compiled_kernel.c. Hand-written because the library alternatives cost more memory than the
 * query itself: scipy's COO -> CSR conversion (the pure path) needs both directions as index
 * arrays, its own index copies and the output, and on this machine the page faults of each
 * large array cost as much as the sort (0.04-0.55 s per 250 MB, depending on the kernel's
 * huge pages).
 *
 * pair_edges: the (2, E) int64 edge index (row 0 sources, row 1 targets) of n_pairs pairs
 * (i, j), each an undirected edge, in both directions, plus the self loop of every node when
 * loops is set; sorted by target, then source. A counting sort by target straight into the
 * output, then each target's sources sorted in place (insertion sort: ~16 per row), so
 * nothing but the output and one (n + 1) cursor array is allocated. */

void pair_edges(int64_t n, int64_t n_pairs, const int64_t *pairs, int32_t loops, int64_t *out) {
    int64_t n_edges = 2 * n_pairs + (loops ? n : 0);
    int64_t *sources = out, *targets = out + n_edges;
    int64_t *next = calloc(n + 1, sizeof(int64_t));
    for (int64_t p = 0; p < n_pairs; p++) {
        next[pairs[2 * p] + 1]++;
        next[pairs[2 * p + 1] + 1]++;
    }
    for (int64_t i = 0; i < n; i++) next[i + 1] += next[i] + (loops ? 1 : 0);
    for (int64_t i = 0; i < n; i++)
        for (int64_t e = next[i]; e < next[i + 1]; e++) targets[e] = i;
    if (loops)
        for (int64_t i = 0; i < n; i++) sources[next[i]++] = i;
    for (int64_t p = 0; p < n_pairs; p++) {
        int64_t i = pairs[2 * p], j = pairs[2 * p + 1];
        sources[next[j]++] = i;
        sources[next[i]++] = j;
    }
    /* next[i] is now the end of row i, the start of row i + 1 */
    for (int64_t i = 0, start = 0; i < n; start = next[i], i++)
        for (int64_t e = start + 1; e < next[i]; e++) {
            int64_t value = sources[e], k = e;
            for (; k > start && sources[k - 1] > value; k--) sources[k] = sources[k - 1];
            sources[k] = value;
        }
    free(next);
}

/* farthest_point_blocks: exact farthest-point sampling, the picks of
 * meshop.geometry.hierarchy.farthest_point_sampling (exact=True) bit for bit: each point's
 * squared distance to the sample, the farthest point picked, the lowest id among equals.
 * Distances are summed in the order numpy sums them, without fused multiply-adds. The points
 * lie in blocks of `block` (kd-tree order, the last block padded), GROUP consecutive blocks
 * form a group, and both have bounding boxes: a group's and then a block's distances are
 * visited only when the new pick can be nearer than their farthest point is now. Hand-written
 * because the numpy loop pays ~60 us of interpreter per pick and fpsample's samplers compute
 * in float32 (other picks at near-ties). coords (n_blocks, dim, block), ids (n_blocks, block),
 * slot (n): each point's flat position. */
#define GROUP 16

static double box_gap2(const double *lo, const double *hi, const double *p, int64_t dim) {
    double gap2 = 0.0;
    for (int64_t k = 0; k < dim; k++) {
        double gap = fmax(lo[k] - p[k], 0.0) + fmax(p[k] - hi[k], 0.0);
        gap2 += gap * gap;
    }
    return gap2;
}

static double max_of(const double *values, int64_t count) {
    double top = -INFINITY;
    for (int64_t q = 0; q < count; q++) top = fmax(top, values[q]);
    return top;
}

__attribute__((optimize("fp-contract=off")))
void farthest_point_blocks(int64_t n, int64_t dim, int64_t n_blocks, int64_t block, const double *coords,
                           const int64_t *ids, const int64_t *slot, const double *points, int64_t n_samples,
                           int64_t *out) {
    int64_t n_groups = (n_blocks + GROUP - 1) / GROUP;
    double *dist = malloc(n_blocks * block * sizeof(double)), *block_max = malloc(n_blocks * sizeof(double));
    double *lo = malloc((n_blocks + n_groups) * dim * sizeof(double)), *hi = malloc((n_blocks + n_groups) * dim * sizeof(double));
    double *group_lo = lo + n_blocks * dim, *group_hi = hi + n_blocks * dim, *group_max = malloc(n_groups * sizeof(double));
    for (int64_t q = 0; q < n_blocks * block; q++) dist[q] = q < n ? INFINITY : -INFINITY;
    for (int64_t b = 0; b < n_blocks; b++) {
        block_max[b] = max_of(dist + b * block, block);
        for (int64_t k = 0; k < dim; k++) {
            const double *c = coords + (b * dim + k) * block;
            double low = c[0], high = c[0];
            for (int64_t q = 1; q < block; q++) low = fmin(low, c[q]), high = fmax(high, c[q]);
            lo[b * dim + k] = low, hi[b * dim + k] = high;
        }
    }
    for (int64_t g = 0; g < n_groups; g++) {
        int64_t first = g * GROUP, last = first + GROUP < n_blocks ? first + GROUP : n_blocks;
        group_max[g] = max_of(block_max + first, last - first);
        for (int64_t k = 0; k < dim; k++) {
            group_lo[g * dim + k] = lo[first * dim + k], group_hi[g * dim + k] = hi[first * dim + k];
            for (int64_t b = first + 1; b < last; b++)
                group_lo[g * dim + k] = fmin(group_lo[g * dim + k], lo[b * dim + k]),
                group_hi[g * dim + k] = fmax(group_hi[g * dim + k], hi[b * dim + k]);
        }
    }
    for (int64_t m = 1; m < n_samples; m++) {
        const double *p = points + out[m - 1] * dim;
        int64_t picked = slot[out[m - 1]], picked_block = picked / block;
        for (int64_t g = 0; g < n_groups; g++) {
            if (!(box_gap2(group_lo + g * dim, group_hi + g * dim, p, dim) < group_max[g])) continue;
            int64_t first = g * GROUP, last = first + GROUP < n_blocks ? first + GROUP : n_blocks;
            for (int64_t b = first; b < last; b++) {
                if (!(box_gap2(lo + b * dim, hi + b * dim, p, dim) < block_max[b])) continue;
                double *d = dist + b * block, top = -INFINITY;
                for (int64_t q = 0; q < block; q++) {
                    double sum = 0.0;
                    for (int64_t k = 0; k < dim; k++) {
                        double delta = coords[(b * dim + k) * block + q] - p[k];
                        sum += delta * delta;
                    }
                    if (sum < d[q]) d[q] = sum;
                    top = fmax(top, d[q]);
                }
                block_max[b] = top;
            }
            group_max[g] = max_of(block_max + first, last - first);
        }
        dist[picked] = -INFINITY;                                   /* never picked twice */
        block_max[picked_block] = max_of(dist + picked_block * block, block);
        int64_t picked_group = picked_block / GROUP, first = picked_group * GROUP;
        group_max[picked_group] = max_of(block_max + first, (first + GROUP < n_blocks ? first + GROUP : n_blocks) - first);
        double top = max_of(group_max, n_groups);
        int64_t best = INT64_MAX;
        for (int64_t g = 0; g < n_groups; g++) {
            if (group_max[g] != top) continue;
            for (int64_t b = g * GROUP; b < n_blocks && b < (g + 1) * GROUP; b++)
                if (block_max[b] == top)
                    for (int64_t q = 0; q < block; q++)
                        if (dist[b * block + q] == top && ids[b * block + q] < best) best = ids[b * block + q];
        }
        out[m] = best;
    }
    free(dist), free(block_max), free(lo), free(hi), free(group_max);
}
