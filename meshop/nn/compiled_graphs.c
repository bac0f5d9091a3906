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
