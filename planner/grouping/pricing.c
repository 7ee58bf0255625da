/* Exact pricing for large derived partitions: the branch-and-bound of grouping_pricing.py, in C.
 *
 * The same tree, bounds and pruning rules as _price_exact in grouping_pricing.py (read its module
 * docstring first), for instances without per-group budgets and with at most 63 tasks: a
 * depth-first tree over "task j in / task j out", per-size alive sets, the cardinality (top-r) bound,
 * the spectral bound (an own symmetric eigensolver: Householder tridiagonalisation and implicit QL),
 * exact completion when one task is left to add, and removal of free tasks no improving group can
 * use. Results: per size an upper bound on the best reduced cost (exact where the tree finished and
 * the bound exceeds the threshold), the improving groups found, the node count and whether the tree
 * finished.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXN 63
#define MAXR 8 /* per-group budgets handled here (non-negative resources only) */
#define EPS 1e-7
#define STOP_POLL 64 /* nodes between two looks at the caller's stop flag (a power of two) */

typedef uint64_t u64;

typedef struct Cache {
    int refs;
    int has_T, has_eig;
    double T[MAXN * MAXN];        /* T[j*u + t]: sum of the t largest W over free partners of j */
    double lam[MAXN];             /* eigenvalues (ascending) of Z^T W_UU Z, u - 1 of them */
    double vec[MAXN * MAXN];      /* eigenvectors, column k: vec[i*(u-1) + k] */
    double w1[MAXN];              /* row sums of W_UU */
    double tot;
    double hv[MAXN];              /* Householder vector mapping 1/sqrt(u) to e_1 (H = I - 2 hv hv^T) */
    struct Cache *next_free;
} Cache;

typedef struct {
    u64 F;
    int f, u;
    int U[MAXN];
    u64 alive;                    /* bit i: sizes[i] */
    double inh[64];               /* inherited bound per size index */
    double AF[MAXN];              /* sum over i in F of W[i][.] */
    double P, D, Pi;
    double Rv[MAXR];              /* resources used by F */
    Cache *cache;
} Node;

typedef struct {
    int n, ns;
    const double *W, *d, *pi, *a, *b;
    const int *sizes;
    int nr;                       /* budgets: res (n x nr, non-negative), caps (nr) */
    const double *res, *caps;
    double mu, threshold;
    int enumerate_all, overflow;  /* list every group with rc > threshold (not only the best per size) */
    double best[64], pruned[64];
    /* columns found: a small pool of the best distinct ones */
    int cap, ncols;
    u64 *cmask;
    double *crc;
    Cache *free_list;
} Ctx;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static Cache *cache_new(Ctx *c)
{
    Cache *k = c->free_list;
    if (k)
        c->free_list = k->next_free;
    else
        k = malloc(sizeof(Cache));
    if (!k)
        return NULL;
    k->refs = 0;
    k->has_T = k->has_eig = 0;
    return k;
}

static void cache_release(Ctx *c, Cache *k)
{
    if (k && --k->refs <= 0) {
        k->next_free = c->free_list;
        c->free_list = k;
    }
}

static int popcount64(u64 x) { return __builtin_popcountll(x); }

static void record(Ctx *c, u64 F, int si, double rc)
{
    if (rc > c->best[si])
        c->best[si] = rc;
    if (c->enumerate_all) {
        if (!(rc > c->threshold))
            return;
        if (c->ncols < c->cap) {
            c->cmask[c->ncols] = F;
            c->crc[c->ncols] = rc;
            c->ncols++;
        } else {
            c->overflow = 1;
        }
        return;
    }
    if (!(rc > EPS))
        return;
    for (int i = 0; i < c->ncols; i++)
        if (c->cmask[i] == F) {
            if (rc > c->crc[i])
                c->crc[i] = rc;
            return;
        }
    if (c->ncols < c->cap) {
        c->cmask[c->ncols] = F;
        c->crc[c->ncols] = rc;
        c->ncols++;
        return;
    }
    int worst = 0;
    for (int i = 1; i < c->ncols; i++)
        if (c->crc[i] < c->crc[worst])
            worst = i;
    if (rc > c->crc[worst]) {
        c->cmask[worst] = F;
        c->crc[worst] = rc;
    }
}

/* ------------------------------------------------------------------ symmetric eigensolver */
/* A (m x m, row-major, symmetric) -> eigenvalues ascending in w, eigenvectors as columns of Z.
 * Householder reduction to tridiagonal form with the transformations accumulated, then the
 * implicit QL method with Wilkinson-type shifts. Returns 0, or -1 when QL does not converge. */
static int sym_eig(int m, double *A, double *w, double *Z)
{
    double e[MAXN], v[MAXN], p[MAXN];
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            Z[i * m + j] = (i == j);
    for (int k = 0; k + 2 < m; k++) {
        double nrm = 0.0;
        for (int i = k + 1; i < m; i++)
            nrm += A[i * m + k] * A[i * m + k];
        nrm = sqrt(nrm);
        if (nrm == 0.0)
            continue;
        const double x0 = A[(k + 1) * m + k];
        const double alpha = x0 > 0 ? -nrm : nrm;
        double vn = 0.0;
        for (int i = k + 1; i < m; i++) {
            v[i] = A[i * m + k];
            if (i == k + 1)
                v[i] -= alpha;
            vn += v[i] * v[i];
        }
        if (vn == 0.0)
            continue;
        vn = sqrt(vn);
        for (int i = k + 1; i < m; i++)
            v[i] /= vn;
        /* A <- H A H on the trailing block (rows/cols k+1..): p = A v, w = p - (v.p) v,
         * A -= 2 (v w^T + w v^T) */
        double vp = 0.0;
        for (int i = k + 1; i < m; i++) {
            double s = 0.0;
            for (int j = k + 1; j < m; j++)
                s += A[i * m + j] * v[j];
            p[i] = s;
            vp += v[i] * s;
        }
        for (int i = k + 1; i < m; i++)
            p[i] -= vp * v[i];
        for (int i = k + 1; i < m; i++)
            for (int j = k + 1; j < m; j++)
                A[i * m + j] -= 2.0 * (v[i] * p[j] + p[i] * v[j]);
        A[(k + 1) * m + k] = A[k * m + k + 1] = alpha;
        for (int i = k + 2; i < m; i++)
            A[i * m + k] = A[k * m + i] = 0.0;
        /* Z <- Z H (columns k+1..) */
        for (int i = 0; i < m; i++) {
            double s = 0.0;
            for (int j = k + 1; j < m; j++)
                s += Z[i * m + j] * v[j];
            s *= 2.0;
            for (int j = k + 1; j < m; j++)
                Z[i * m + j] -= s * v[j];
        }
    }
    for (int i = 0; i < m; i++) {
        w[i] = A[i * m + i];
        e[i] = i + 1 < m ? A[(i + 1) * m + i] : 0.0;
    }
    /* implicit QL: e[i] couples w[i] and w[i+1] */
    for (int l = 0; l < m; l++) {
        int iter = 0, mm;
        do {
            for (mm = l; mm < m - 1; mm++) {
                const double dd = fabs(w[mm]) + fabs(w[mm + 1]);
                if (fabs(e[mm]) <= 1e-15 * dd)
                    break;
            }
            if (mm != l) {
                if (iter++ == 200)
                    return -1;
                double g = (w[l + 1] - w[l]) / (2.0 * e[l]);
                double r = hypot(g, 1.0);
                g = w[mm] - w[l] + e[l] / (g + (g >= 0 ? fabs(r) : -fabs(r)));
                double s = 1.0, c = 1.0, pp = 0.0;
                int i;
                for (i = mm - 1; i >= l; i--) {
                    double f = s * e[i], b = c * e[i];
                    e[i + 1] = (r = hypot(f, g));
                    if (r == 0.0) {
                        w[i + 1] -= pp;
                        e[mm] = 0.0;
                        break;
                    }
                    s = f / r;
                    c = g / r;
                    g = w[i + 1] - pp;
                    r = (w[i] - g) * s + 2.0 * c * b;
                    w[i + 1] = g + (pp = s * r);
                    g = c * r - b;
                    for (int k = 0; k < m; k++) {
                        f = Z[k * m + i + 1];
                        Z[k * m + i + 1] = s * Z[k * m + i] + c * f;
                        Z[k * m + i] = c * Z[k * m + i] - s * f;
                    }
                }
                if (r == 0.0 && i >= l)
                    continue;
                w[l] -= pp;
                e[l] = g;
                e[mm] = 0.0;
            }
        } while (mm != l);
    }
    /* sort ascending (selection sort; m is small) */
    for (int i = 0; i < m - 1; i++) {
        int k = i;
        for (int j = i + 1; j < m; j++)
            if (w[j] < w[k])
                k = j;
        if (k != i) {
            double t = w[i];
            w[i] = w[k];
            w[k] = t;
            for (int r = 0; r < m; r++) {
                t = Z[r * m + i];
                Z[r * m + i] = Z[r * m + k];
                Z[r * m + k] = t;
            }
        }
    }
    return 0;
}

int eig_test(int m, double *A, double *w, double *Z) { return sym_eig(m, A, w, Z); }

/* ------------------------------------------------------------------ bounds */
static void ensure_T(const Ctx *c, Node *nd)
{
    Cache *k = nd->cache;
    if (k->has_T)
        return;
    const int u = nd->u;
    double row[MAXN];
    for (int j = 0; j < u; j++) {
        int t = 0;
        const double *Wj = c->W + (size_t)nd->U[j] * c->n;
        for (int q = 0; q < u; q++)
            if (q != j)
                row[t++] = Wj[nd->U[q]];
        /* insertion sort, descending */
        for (int x = 1; x < t; x++) {
            const double y = row[x];
            int z = x - 1;
            while (z >= 0 && row[z] < y) {
                row[z + 1] = row[z];
                z--;
            }
            row[z + 1] = y;
        }
        double s = 0.0;
        k->T[j * u + 0] = 0.0;
        for (int q = 0; q < u - 1; q++) {
            s += row[q];
            k->T[j * u + q + 1] = s;
        }
    }
    k->has_T = 1;
}

static int ensure_eig(const Ctx *c, Node *nd)
{
    Cache *k = nd->cache;
    if (k->has_eig)
        return k->has_eig > 0 ? 0 : -1;
    const int u = nd->u, m = u - 1;
    double A[MAXN * MAXN], M[MAXN * MAXN];
    for (int i = 0; i < u; i++) {
        const double *Wi = c->W + (size_t)nd->U[i] * c->n;
        double s = 0.0;
        for (int j = 0; j < u; j++) {
            A[i * u + j] = Wi[nd->U[j]];
            s += A[i * u + j];
        }
        k->w1[i] = s;
    }
    double tot = 0.0;
    for (int i = 0; i < u; i++)
        tot += k->w1[i];
    k->tot = tot;
    /* H = I - 2 h h^T maps 1/sqrt(u) to e_1; Z = columns 1.. of H span the complement of 1 */
    const double r = 1.0 / sqrt((double)u);
    double hn = 0.0;
    for (int i = 0; i < u; i++) {
        k->hv[i] = r - (i == 0);
        hn += k->hv[i] * k->hv[i];
    }
    hn = sqrt(hn);
    if (hn > 0)
        for (int i = 0; i < u; i++)
            k->hv[i] /= hn;
    /* H A H = A - 2 h q^T - 2 q h^T with q = A h - (h.A h) h */
    double q[MAXN], hAh = 0.0;
    for (int i = 0; i < u; i++) {
        double s = 0.0;
        for (int j = 0; j < u; j++)
            s += A[i * u + j] * k->hv[j];
        q[i] = s;
        hAh += k->hv[i] * s;
    }
    for (int i = 0; i < u; i++)
        q[i] -= hAh * k->hv[i];
    for (int i = 1; i < u; i++)
        for (int j = 1; j < u; j++)
            M[(i - 1) * m + (j - 1)] = A[i * u + j] - 2.0 * (k->hv[i] * q[j] + q[i] * k->hv[j]);
    if (sym_eig(m, M, k->lam, k->vec) != 0) {
        k->has_eig = -1;
        return -1;
    }
    k->has_eig = 1;
    return 0;
}

/* Upper bound on max 0.5 a x^T W x + c^T x over x in {0,1}^u, sum x = r (c = C0 row): the
 * spectral bound of _spectral in grouping_pricing.py (same formulas, same Newton steps). */
static double spectral_bound(const Ctx *c, Node *nd, int r, double as, const double *C0)
{
    (void)c;
    Cache *k = nd->cache;
    const int u = nd->u, m = u - 1;
    const double mr = (double)r / u;
    double rho = r - r * mr;
    if (rho < 0)
        rho = 0;
    double sc0 = 0.0;
    for (int j = 0; j < u; j++)
        sc0 += C0[j];
    const double cst = 0.5 * as * mr * mr * k->tot + mr * sc0;
    if (rho <= 1e-12)
        return cst + 1e-9 * (1.0 + fabs(cst));
    double lin[MAXN], hl[MAXN], h2[MAXN], A[MAXN];
    double hdot = 0.0;
    for (int j = 0; j < u; j++) {
        lin[j] = as * mr * k->w1[j] + C0[j];
        hdot += k->hv[j] * lin[j];
    }
    for (int j = 0; j < u; j++)
        hl[j] = lin[j] - 2.0 * hdot * k->hv[j]; /* H lin; components 1.. are Z^T lin */
    double hs = 0.0;
    for (int t = 0; t < m; t++) {
        double s = 0.0;
        for (int i = 0; i < m; i++)
            s += k->vec[i * m + t] * hl[i + 1];
        h2[t] = s * s;
        hs += h2[t];
        A[t] = as * k->lam[t];
    }
    const double amax = A[m - 1];
    const double sr = sqrt(rho > 1e-300 ? rho : 1e-300);
    double g = amax + sqrt(hs) / sr + 1e-12 * (1.0 + fabs(amax));
    double val = INFINITY;
    for (int it = 0; it < 8; it++) {
        double sum_inv = 0.0, S = 0.0, dS = 0.0;
        int finite = 1;
        for (int t = 0; t < m; t++) {
            const double inv = 1.0 / (g - A[t]);
            if (!isfinite(inv)) {
                finite = 0;
                break;
            }
            const double qq = h2[t] * inv * inv;
            sum_inv += h2[t] * inv;
            S += qq;
            dS += qq * inv;
        }
        if (!finite) {
            g = 0.5 * (g + amax);
            continue;
        }
        const double v = 0.5 * g * rho + 0.5 * sum_inv;
        if (v < val)
            val = v;
        if (S < 1e-300)
            S = 1e-300;
        const double psi = pow(S, -0.5) - 1.0 / sr;
        const double dpsi = pow(S, -1.5) * dS;
        const double step = dpsi > 0 ? psi / (dpsi > 1e-300 ? dpsi : 1e-300) : 0.0;
        const double gn = g - step;
        g = (isfinite(gn) && gn > amax) ? gn : 0.5 * (g + amax);
    }
    return cst + val + 1e-9 * (1.0 + fabs(cst) + fabs(val));
}

/* ------------------------------------------------------------------ the tree */
static int cmp_desc(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a < b) - (a > b);
}

/* Returns 1 when the tree finished, 0 when stopped (time or node limit, or *stop set by the caller:
 * Ctrl-C, polled every STOP_POLL nodes; NULL: never), -1 on memory failure.
 * enumerate_all: record every group with rc > threshold (up to cap; *overflow_out = 1 beyond), and
 * prune by the threshold only: the list is then complete when the tree finished without overflow. */
int price_bb(int n, const double *W, const double *d, const double *pi, const double *a, const double *b,
             int ns, const int *sizes, double mu, double threshold, double time_limit, long long node_limit,
             int spectral, int enumerate_all, int nr, const double *res, const double *caps, double *ub_out,
             int cap, u64 *cmask, double *crc, int *ncols_out, long long *nodes_out, int *overflow_out,
             volatile const int *stop)
{
    if (n > MAXN || ns > 64 || n < 1 || nr < 0 || nr > MAXR)
        return -1;
    Ctx c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.ns = ns;
    c.W = W;
    c.d = d;
    c.pi = pi;
    c.a = a;
    c.b = b;
    c.sizes = sizes;
    c.mu = mu;
    c.threshold = threshold;
    c.enumerate_all = enumerate_all;
    c.nr = nr;
    c.res = res;
    c.caps = caps;
    c.cap = cap;
    c.cmask = cmask;
    c.crc = crc;
    for (int i = 0; i < ns; i++)
        c.best[i] = c.pruned[i] = -INFINITY;
    int size_idx[MAXN + 2];
    for (int s = 0; s <= n + 1 && s < MAXN + 2; s++)
        size_idx[s] = -1;
    for (int i = 0; i < ns; i++)
        size_idx[sizes[i]] = i;

    const int max_stack = 2 * n + 8;
    Node *stack = malloc(sizeof(Node) * (size_t)max_stack);
    if (!stack)
        return -1;
    int sp = 0;
    Node *root = &stack[sp++];
    memset(root, 0, sizeof(Node));
    root->u = 0;
    for (int i = 0; i < n; i++) {
        int fit = 1; /* a task that alone breaks a budget is in no group */
        for (int r = 0; r < nr; r++)
            if (res[i * nr + r] > caps[r])
                fit = 0;
        if (fit)
            root->U[root->u++] = i;
    }
    root->alive = ns == 64 ? ~0ULL : ((1ULL << ns) - 1);
    for (int i = 0; i < ns; i++)
        root->inh[i] = INFINITY;
    root->cache = cache_new(&c);
    if (!root->cache) {
        free(stack);
        return -1;
    }
    root->cache->refs = 1;

    const double t0 = now_s();
    long long nodes = 0;
    int done = 1, failed = 0;
    double (*Cm)[MAXN] = malloc(sizeof(double) * 64 * MAXN * 3);
    if (!Cm) {
        cache_release(&c, root->cache);
        free(stack);
        while (c.free_list) {
            Cache *k = c.free_list;
            c.free_list = k->next_free;
            free(k);
        }
        return -1;
    }
    double (*Cs)[MAXN] = Cm + 64, (*C0m)[MAXN] = Cm + 128;
    double bounds[64], base[64], thr[64] = {0};
    int rr[64], si_of[64];
    /* compact the per-size rows: row `from` moves to row `to` (every per-size array) */
#define MOVE_SIZE(to, from)                                                  \
    do {                                                                     \
        si_of[to] = si_of[from];                                             \
        rr[to] = rr[from];                                                   \
        base[to] = base[from];                                               \
        bounds[to] = bounds[from];                                           \
        thr[to] = thr[from];                                                 \
        memcpy(Cm[to], Cm[from], sizeof(double) * (size_t)u);                \
        memcpy(C0m[to], C0m[from], sizeof(double) * (size_t)u);              \
        memcpy(Cs[to], Cs[from], sizeof(double) * (size_t)u);                \
    } while (0)
    while (sp > 0) {
        if ((node_limit >= 0 && nodes >= node_limit) ||
            (time_limit >= 0 && (nodes & 31) == 31 && now_s() - t0 > time_limit) ||
            (stop && (nodes & (STOP_POLL - 1)) == 0 && *stop)) {
            done = 0;
            break;
        }
        Node nd = stack[--sp];
        /* sizes beaten since the parent was bounded */
        u64 alive = 0;
        for (u64 bits = nd.alive; bits; bits &= bits - 1) {
            const int i = __builtin_ctzll(bits);
            const double th = (!c.enumerate_all && c.best[i] > threshold) ? c.best[i] : threshold;
            if (nd.inh[i] > th)
                alive |= 1ULL << i;
            else if (nd.inh[i] > c.pruned[i])
                c.pruned[i] = nd.inh[i];
        }
        if (!alive) {
            cache_release(&c, nd.cache);
            continue;
        }
        nodes++;
        const int f = nd.f, u = nd.u;
        if (f > 0 && f <= n && size_idx[f] >= 0 && (alive >> size_idx[f] & 1)) {
            const int i = size_idx[f];
            record(&c, nd.F, i, a[f] * nd.P + b[f] * nd.D - nd.Pi - mu);
            alive &= ~(1ULL << i);
        }
        int na = 0, rmax = 0;
        for (u64 bits = alive; bits; bits &= bits - 1) {
            const int i = __builtin_ctzll(bits);
            const int s = sizes[i];
            if (s > f && s - f <= u) {
                si_of[na] = i;
                rr[na] = s - f;
                if (rr[na] > rmax)
                    rmax = rr[na];
                na++;
            }
        }
        if (na == 0) {
            cache_release(&c, nd.cache);
            continue;
        }
        if (rmax > 1)
            ensure_T(&c, &nd);
        const double *T = nd.cache->T;
        for (int q = 0; q < na; q++) {
            const int s = sizes[si_of[q]];
            const int r = rr[q];
            const double as = a[s], bs = b[s];
            for (int j = 0; j < u; j++) {
                const int t = nd.U[j];
                C0m[q][j] = as * nd.AF[t] + bs * d[t] - pi[t];
                Cm[q][j] = C0m[q][j] + (r > 1 ? as * 0.5 * T[j * u + r - 1] : 0.0);
                Cs[q][j] = Cm[q][j];
            }
            qsort(Cs[q], (size_t)u, sizeof(double), cmp_desc);
            for (int j = 1; j < u; j++)
                Cs[q][j] += Cs[q][j - 1]; /* Cs[q][k]: sum of the k + 1 largest */
            base[q] = as * nd.P + bs * nd.D - nd.Pi - mu;
            bounds[q] = base[q] + Cs[q][r - 1];
        }
        /* sizes one short of F: exact, take the best additions */
        int keep_n = 0;
        for (int q = 0; q < na; q++) {
            if (rr[q] == 1 && c.enumerate_all) {
                for (int j = 0; j < u; j++)
                    record(&c, nd.F | (1ULL << nd.U[j]), si_of[q], base[q] + Cm[q][j]);
            } else if (rr[q] == 1) {
                const int i = si_of[q];
                /* up to 3 best additions (or until not improving) */
                int used[3] = {-1, -1, -1};
                for (int got = 0; got < 3; got++) {
                    int bj = -1;
                    for (int j = 0; j < u; j++) {
                        if (j == used[0] || j == used[1] || j == used[2])
                            continue;
                        if (bj < 0 || Cm[q][j] > Cm[q][bj])
                            bj = j;
                    }
                    if (bj < 0)
                        break;
                    used[got] = bj;
                    const double rc = base[q] + Cm[q][bj];
                    record(&c, nd.F | (1ULL << nd.U[bj]), i, rc);
                    if (rc <= EPS)
                        break;
                }
            } else {
                if (keep_n != q)
                    MOVE_SIZE(keep_n, q);
                keep_n++;
            }
        }
        na = keep_n;
        if (na == 0) {
            cache_release(&c, nd.cache);
            continue;
        }
        for (int q = 0; q < na; q++) {
            const int i = si_of[q];
            thr[q] = (!c.enumerate_all && c.best[i] > threshold) ? c.best[i] : threshold;
        }
        if (spectral) {
            for (int q = 0; q < na; q++) {
                if (bounds[q] > thr[q] && u >= 2) {
                    if (ensure_eig(&c, &nd) == 0) {
                        const double sb = spectral_bound(&c, &nd, rr[q], a[sizes[si_of[q]]], C0m[q]) + base[q];
                        if (sb < bounds[q])
                            bounds[q] = sb;
                    }
                }
            }
        }
        int live_n = 0;
        for (int q = 0; q < na; q++) {
            if (bounds[q] > thr[q]) {
                if (live_n != q)
                    MOVE_SIZE(live_n, q);
                live_n++;
            } else {
                const int i = si_of[q];
                if (bounds[q] > c.pruned[i])
                    c.pruned[i] = bounds[q];
            }
        }
        na = live_n;
        if (na == 0) {
            cache_release(&c, nd.cache);
            continue;
        }
        /* free tasks that no group of an alive size can use */
        int useful[MAXN], n_useful = 0;
        double gone[64];
        for (int q = 0; q < na; q++)
            gone[q] = -INFINITY;
        for (int j = 0; j < u; j++) {
            int ok = 0;
            for (int q = 0; q < na; q++) {
                const int r = rr[q];
                const double top = Cs[q][r - 1], other = Cm[q][j] + Cs[q][r - 2];
                const double wj = base[q] + (top < other ? top : other);
                if (wj > thr[q]) {
                    ok = 1;
                    break;
                }
            }
            useful[j] = ok;
            n_useful += ok;
            if (!ok)
                for (int q = 0; q < na; q++) {
                    const int r = rr[q];
                    const double top = Cs[q][r - 1], other = Cm[q][j] + Cs[q][r - 2];
                    const double wj = base[q] + (top < other ? top : other);
                    if (wj > gone[q])
                        gone[q] = wj;
                }
        }
        int U2[MAXN], u2 = u;
        Cache *cache = nd.cache;
        if (n_useful < u) {
            for (int q = 0; q < na; q++)
                if (gone[q] > c.pruned[si_of[q]])
                    c.pruned[si_of[q]] = gone[q];
            u2 = 0;
            for (int j = 0; j < u; j++)
                if (useful[j]) {
                    U2[u2] = nd.U[j];
                    for (int q = 0; q < na; q++)
                        Cm[q][u2] = Cm[q][j];
                    u2++;
                }
            if (u2 == 0) {
                cache_release(&c, nd.cache);
                continue;
            }
        } else {
            memcpy(U2, nd.U, sizeof(int) * (size_t)u);
        }
        /* branch on the best addition for the most promising size */
        int top = 0;
        for (int q = 1; q < na; q++)
            if (bounds[q] > bounds[top])
                top = q;
        int jj = 0;
        for (int j = 1; j < u2; j++)
            if (Cm[top][j] > Cm[top][jj])
                jj = j;
        const int jt = U2[jj];
        cache_release(&c, cache);
        Cache *child = sp + 2 <= max_stack ? cache_new(&c) : NULL;
        if (!child) {
            failed = 1;
            break;
        }
        child->refs = 2;
        u64 alive2 = 0;
        double inh2[64];
        for (int q = 0; q < na; q++) {
            alive2 |= 1ULL << si_of[q];
            inh2[si_of[q]] = bounds[q];
        }
        Node *out = &stack[sp++];
        out->F = nd.F;
        out->f = f;
        out->u = 0;
        for (int j = 0; j < u2; j++)
            if (j != jj)
                out->U[out->u++] = U2[j];
        out->alive = alive2;
        for (int q = 0; q < na; q++)
            out->inh[si_of[q]] = inh2[si_of[q]];
        memcpy(out->AF, nd.AF, sizeof(double) * (size_t)n);
        memcpy(out->Rv, nd.Rv, sizeof(out->Rv));
        out->P = nd.P;
        out->D = nd.D;
        out->Pi = nd.Pi;
        out->cache = child;
        /* the in-child: with budgets, F + j must fit and keeps only the free tasks that fit beside it
         * (resources are non-negative, so a task that does not fit now never will) */
        double R2[MAXR] = {0};
        int in_fits = 1;
        for (int r = 0; r < nr; r++) {
            R2[r] = nd.Rv[r] + res[jt * nr + r];
            if (R2[r] > caps[r])
                in_fits = 0;
        }
        if (!in_fits) {
            child->refs = 1;
            continue;
        }
        Node *in = &stack[sp++];
        *in = *out;
        in->F = nd.F | (1ULL << jt);
        in->f = f + 1;
        memcpy(in->Rv, R2, sizeof(double) * (size_t)(nr > 0 ? nr : 1));
        if (nr > 0) {
            int k2 = 0;
            for (int q = 0; q < out->u; q++) {
                const int t = out->U[q];
                int fit = 1;
                for (int r = 0; r < nr; r++)
                    if (R2[r] + res[t * nr + r] > caps[r])
                        fit = 0;
                if (fit)
                    in->U[k2++] = t;
            }
            if (k2 < out->u) {
                in->u = k2;
                Cache *own = cache_new(&c);
                if (!own) {
                    failed = 1;
                    break;
                }
                own->refs = 1;
                child->refs = 1;
                in->cache = own;
            }
        }
        const double *Wj = W + (size_t)jt * n;
        for (int i = 0; i < n; i++)
            in->AF[i] = nd.AF[i] + Wj[i];
        in->P = nd.P + nd.AF[jt];
        in->D = nd.D + d[jt];
        in->Pi = nd.Pi + pi[jt];
    }
    if (!done || failed) {
        for (int k = 0; k < sp; k++) {
            Node *nd = &stack[k];
            for (u64 bits = nd->alive; bits; bits &= bits - 1) {
                const int i = __builtin_ctzll(bits);
                const int s = sizes[i];
                if ((s == nd->f || s - nd->f <= nd->u) && nd->inh[i] > c.pruned[i])
                    c.pruned[i] = nd->inh[i];
            }
        }
    }
    for (int i = 0; i < ns; i++)
        ub_out[i] = c.best[i] > c.pruned[i] ? c.best[i] : c.pruned[i];
    *ncols_out = c.ncols;
    *nodes_out = nodes;
    *overflow_out = c.overflow;
    /* free the cache pool */
    for (int k = 0; k < sp; k++)
        cache_release(&c, stack[k].cache);
    while (c.free_list) {
        Cache *k = c.free_list;
        c.free_list = k->next_free;
        free(k);
    }
    free(stack);
    free(Cm);
    (void)popcount64;
    if (failed)
        return -1;
    return done;
}
