/* The heat-kernel potential of meshop.nn.heat_potential (the DMM's phi), for inference, included
 * by compiled_kernel.c. The same grids and arithmetic as the PyTorch path, in float64: per scale
 * s the sources are spread onto a regular grid of spacing spacing * sigma_s (bilinear shares), then
 * every node sums the Gaussians of the grid nodes of its k x k window (k = 2R + 2, R = the grid
 * nodes within the cutoff) that lie within cutoff * sigma_s, the Gaussian factored into its x and
 * y parts. Written by hand because the PyTorch path spends its time building and gathering
 * (N, k, k) windows (index tensors, masks, a batched product per node): here each node's window
 * is read in place from the grid, and nothing of size N k^2 is ever stored.
 *
 * out (n, 6) float64, per node: phi, dphi/dx, dphi/dy, and with hessian set the second
 * derivatives xx, xy, yy (else left untouched). strength (n, n_scales): the sources times their
 * quadrature weights and |Omega| / 4 pi, as the PyTorch path computes them. */

/* g[o] = exp(-(d - o h)^2 / var2) for o < k, with three exp calls instead of k: consecutive
 * Gaussians on a ladder of step h differ by a factor that itself changes by exp(-2 h^2 / var2)
 * (within ~k ulp of exp at each point; exp was most of the time when called at every point) */
static void gaussian_ladder(double d, double h, double var2, int64_t k, double *g) {
    double ratio = exp((2 * d * h - h * h) / var2), decay = exp(-2 * h * h / var2);
    g[0] = exp(-d * d / var2);
    for (int64_t o = 1; o < k; o++) {
        g[o] = g[o - 1] * ratio;
        ratio *= decay;
    }
}

void heat_potential_f64(int64_t n, const double *pos, int64_t n_scales, const double *widths,
                        const double *strength, double spacing, double cutoff, int64_t reach,
                        int32_t hessian, double *out) {
    enum { K_MAX = 64 };
    int64_t k = 2 * reach + 2;
    if (k > K_MAX || n == 0) return;                /* the caller checks reach */
    double lower[2] = {pos[0], pos[1]}, upper[2] = {pos[0], pos[1]};
    for (int64_t i = 1; i < n; i++)
        for (int a = 0; a < 2; a++) {
            double v = pos[2 * i + a];
            if (v < lower[a]) lower[a] = v;
            if (v > upper[a]) upper[a] = v;
        }
    memset(out, 0, (size_t)n * 6 * sizeof(double));
    int64_t *cells = malloc((size_t)n * 2 * sizeof(int64_t));
    double *fractions = malloc((size_t)n * 2 * sizeof(double));
    for (int64_t s = 0; s < n_scales; s++) {
        double sigma = widths[s], step = spacing * sigma, sigma2 = sigma * sigma, var2 = 2 * sigma2;
        double cut2 = (cutoff * sigma) * (cutoff * sigma);
        int64_t shape[2];
        for (int a = 0; a < 2; a++) shape[a] = (int64_t)floor((upper[a] - lower[a]) / step) + 2;
        int64_t rows = shape[1] + 2 * reach, size = (shape[0] + 2 * reach) * rows;
        double *charge = calloc((size_t)size, sizeof(double));
        for (int64_t i = 0; i < n; i++) {            /* spread: cloud-in-cell shares */
            for (int a = 0; a < 2; a++) {
                double scaled = (pos[2 * i + a] - lower[a]) / step;
                int64_t cell = (int64_t)floor(scaled);
                if (cell > shape[a] - 2) cell = shape[a] - 2;
                cells[2 * i + a] = cell;
                fractions[2 * i + a] = scaled - (double)cell;
            }
            double fx = fractions[2 * i], fy = fractions[2 * i + 1], q = strength[i * n_scales + s];
            int64_t base = (cells[2 * i] + reach) * rows + cells[2 * i + 1] + reach;
            charge[base] += (1 - fx) * (1 - fy) * q;
            charge[base + rows] += fx * (1 - fy) * q;
            charge[base + 1] += (1 - fx) * fy * q;
            charge[base + rows + 1] += fx * fy * q;
        }
        for (int64_t i = 0; i < n; i++) {            /* gather: the window's Gaussians */
            double dx[K_MAX], dy2[K_MAX], dx2[K_MAX], ex[K_MAX], exdx[K_MAX], exh[K_MAX], ey[K_MAX], ey_dy[K_MAX];
            int64_t cx = cells[2 * i], cy = cells[2 * i + 1];
            for (int64_t o = 0; o < k; o++) {
                dx[o] = pos[2 * i] - (lower[0] + step * (double)(cx + o - reach));
                double dy = pos[2 * i + 1] - (lower[1] + step * (double)(cy + o - reach));
                dx2[o] = dx[o] * dx[o];
                dy2[o] = dy * dy;
                ey_dy[o] = dy;
            }
            gaussian_ladder(dx[0], step, var2, k, ex);
            gaussian_ladder(ey_dy[0], step, var2, k, ey);
            for (int64_t o = 0; o < k; o++) {
                exdx[o] = ex[o] * dx[o];
                exh[o] = ex[o] * (dx2[o] / sigma2 - 1.0);
                ey_dy[o] *= ey[o];
            }
            /* rows of the window are contiguous in the grid: sum over a (x) into one sum per b (y) */
            double row0[K_MAX] = {0}, row1[K_MAX] = {0}, row2[K_MAX] = {0};
            const double *column = charge + cx * rows + cy;     /* window (a, b) at column[a rows + b] */
            for (int64_t a = 0; a < k; a++) {
                const double *line = column + a * rows;
                double e0 = ex[a], e1 = exdx[a], e2 = exh[a], limit = cut2 - dx2[a];
                for (int64_t b = 0; b < k; b++) {            /* the disc of the cutoff only */
                    double q = dy2[b] > limit ? 0.0 : line[b];
                    row0[b] += e0 * q;
                    row1[b] += e1 * q;
                    row2[b] += e2 * q;
                }
            }
            double phi = 0, gx = 0, gy = 0, hxx = 0, hxy = 0, hyy = 0;
            for (int64_t b = 0; b < k; b++) {
                phi += row0[b] * ey[b];
                gx += row1[b] * ey[b];
                gy += row0[b] * ey_dy[b];
                hxx += row2[b] * ey[b];
                hxy += row1[b] * ey_dy[b];
                hyy += row0[b] * ey[b] * (dy2[b] / sigma2 - 1.0);
            }
            double *o = out + 6 * i;
            o[0] += phi;
            o[1] -= gx / sigma2;
            o[2] -= gy / sigma2;
            if (hessian) {
                o[3] += hxx / sigma2;
                o[4] += hxy / sigma2 / sigma2;
                o[5] += hyy / sigma2;
            }
        }
        free(charge);
    }
    free(cells);
    free(fractions);
}
