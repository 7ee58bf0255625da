/* One epoch of Adam steps for many one-hidden-layer multitask models, model after model.
 *
 * The CPU fast path of models/train.py (see models/native/__init__.py for how it is built and
 * loaded). Each model is stepped on its own mini-batches, so a model's result does not depend on the
 * other models of the call, on their order or on the number of threads.
 *
 * Compile-time sizes: P1 = input features + 1 (a constant 1 column folds the hidden biases into the
 * first weight matrix), HW = hidden width rounded up to a multiple of 16 (extra units have zero
 * weights and stay zero). Parameter layout of a model (a row of theta; models/mtl.py BatchedMTL):
 *     A1 (P1, HW) | G (K*C, HW) (row k*C + c: head k, output c) | c (K*C) | padding
 * Losses: kind 0 binary (two logits, softmax cross-entropy), 1 multiclass (softmax cross-entropy),
 * 2 regression (squared error). Each row's loss goes through its own task's head and is weighted by
 * 1 / (rows in the batch), as in the plain PyTorch loop.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef P1
#error "P1 must be defined"
#endif
#ifndef HW
#error "HW must be defined"
#endif

typedef int64_t i64;

/* GCC/Clang vector extensions, as wide as the target's registers: VL floats (16 with AVX-512, 8 with
 * AVX, else 4: SSE or NEON). Wider vectors than the registers would be split and spilled. */
#if defined(__AVX512F__)
#define VL 16
#elif defined(__AVX__)
#define VL 8
#else
#define VL 4
#endif
typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));
#define NV (HW / VL)
#if HW % 16
#error "HW must be a multiple of 16"
#endif

static inline vf ld(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void st(float *p, vf v) { memcpy(p, &v, sizeof v); }
/* x where a > 0, else +0 */
static inline vf where_pos(vf a, vf x) { return (vf)((vi)x & (vi)(a > (vf){0})); }
static inline vf relu(vf v) { return where_pos(v, v); }

#ifdef __clang__
#define SHUF(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#else
#define SHUF(v, ...) __builtin_shuffle(v, (vi){__VA_ARGS__})
#endif

/* sum of the VL lanes (a fixed tree, so the same on every call) */
static inline float hsum(vf v)
{
#if VL == 16
    v = v + SHUF(v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    v = v + SHUF(v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    v = v + SHUF(v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    v = v + SHUF(v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
#elif VL == 8
    v = v + SHUF(v, 4, 5, 6, 7, 0, 1, 2, 3);
    v = v + SHUF(v, 2, 3, 0, 1, 6, 7, 4, 5);
    v = v + SHUF(v, 1, 0, 3, 2, 5, 4, 7, 6);
#else
    v = v + SHUF(v, 2, 3, 0, 1);
    v = v + SHUF(v, 1, 0, 3, 2);
#endif
    return v[0];
}

/* exp of VL floats: Cody-Waite reduction x = n ln 2 + r and Cephes' degree-6 polynomial for
 * exp(r) (about 1 ulp); arguments clamped to [-87, 88] (sigmoid needs no more) */
static inline vf vexp(vf x)
{
    const vf hi = (vf){0} + 88.0f, lo = (vf){0} - 87.0f;
    x = (vf)(((vi)x & (vi)(x < hi)) | ((vi)hi & ~(vi)(x < hi)));
    x = (vf)(((vi)x & (vi)(x > lo)) | ((vi)lo & ~(vi)(x > lo)));
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    vf t = x * 1.44269504088896341f + magic;
    const vf n = t - magic;
    const vi ni = (vi)t - (vi)((vf){0} + magic);
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = (vf){0} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    return p * (vf)((ni + 127) << 23);
}

/* Register blocking: the first layer's weight gradient in blocks of KB input columns (KB x NV vector
 * accumulators), the forward pass RB rows at a time (RB x NV accumulators); sized for 32 vector
 * registers with AVX-512 and 16 otherwise. */
#if VL == 16
#define KB_RAW (12 / NV)
#else
#define KB_RAW (8 / NV)
#endif
#if KB_RAW >= 6
#define KB 6
#elif KB_RAW >= 1
#define KB KB_RAW
#else
#define KB 1
#endif
#if (8 / NV) >= 1
#define RB (8 / NV > 4 ? 4 : 8 / NV)
#else
#define RB 1
#endif

/* Scratch of one model step (bc = batch rows). */
typedef struct {
    float *Xb;   /* (bc, P1) input rows, grouped by head slot */
    float *Ab;   /* (bc, HW) hidden activations */
    float *DZ;   /* (bc, HW) gradients of the hidden pre-activations */
    float *E;    /* (bc + 16) per-row logit (difference), then d loss / d logit */
    float *Y;    /* (bc + 16) labels (float) */
    i64 *R;      /* (bc) rows, grouped by slot */
    int *off;    /* (K + 1) slot segments in the grouped order */
    float *H;    /* (K, HW) binary: head weight differences */
} Scratch;

/* dW1 columns k0 .. k0 + w - 1 of Xb^T DZ */
static inline void grad_cols(const float *restrict Xb, const float *restrict DZ, int cnt, int k0, const int w,
                             float *restrict gA1)
{
    vf acc[KB][NV];
    for (int q = 0; q < w; q++)
        for (int v = 0; v < NV; v++)
            acc[q][v] = (vf){0};
    for (int b = 0; b < cnt; b++) {
        const float *x = Xb + (size_t)b * P1 + k0;
        for (int v = 0; v < NV; v++) {
            const vf dz = ld(DZ + (size_t)b * HW + VL * v);
            for (int q = 0; q < w; q++)
                acc[q][v] += x[q] * dz;
        }
    }
    for (int q = 0; q < w; q++)
        for (int v = 0; v < NV; v++)
            st(gA1 + (k0 + q) * HW + VL * v, acc[q][v]);
}

/* Gradient of one model's weighted batch loss into g (used part of the layout, zeroed here). The
 * batch's rows are first grouped by head slot (a counting sort: only the order in which the rows'
 * gradients are summed changes), so each head's weights stay in registers over its rows. */
static void model_grad(const float *restrict X1, const float *restrict yf, const i64 *restrict yi,
                       const i64 *restrict task, const i64 *restrict slots, const i64 *restrict rows,
                       int cnt, int K, int C, int kind, const float *restrict th, float *restrict g,
                       const Scratch *sc)
{
    const int KC = K * C;
    const float *A1 = th;
    const float *G = th + P1 * HW;
    const float *cb = G + KC * HW;
    float *gA1 = g;
    float *gG = g + P1 * HW;
    float *gc = gG + KC * HW;
    float *restrict Xb = sc->Xb, *restrict Ab = sc->Ab, *restrict DZ = sc->DZ, *restrict E = sc->E;
    float *restrict Y = sc->Y;
    i64 *restrict R = sc->R;
    int *restrict off = sc->off;
    memset(g, 0, sizeof(float) * (size_t)(P1 * HW + KC * HW + KC));
    if (cnt <= 0)
        return;
    const float wt = (float)(1.0 / (double)cnt);
    /* group the rows by slot */
    for (int k = 0; k <= K; k++)
        off[k] = 0;
    for (int b = 0; b < cnt; b++)
        off[slots[task[rows[b]]] + 1]++;
    for (int k = 0; k < K; k++)
        off[k + 1] += off[k];
    for (int b = 0; b < cnt; b++) {
        const i64 r = rows[b];
        const int at = off[slots[task[r]]]++;
        R[at] = r;
        memcpy(Xb + (size_t)at * P1, X1 + r * P1, sizeof(float) * P1);
        Y[at] = yf ? yf[r] : 0.0f;
    }
    for (int k = K; k > 0; k--)
        off[k] = off[k - 1];
    off[0] = 0;
    /* forward through the shared layer, RB rows at a time */
    int b0 = 0;
    for (; b0 + RB <= cnt; b0 += RB) {
        vf z[RB][NV];
        for (int r = 0; r < RB; r++)
            for (int v = 0; v < NV; v++)
                z[r][v] = (vf){0};
        const float *x = Xb + (size_t)b0 * P1;
        for (int k = 0; k < P1; k++) {
            for (int v = 0; v < NV; v++) {
                const vf w = ld(A1 + k * HW + VL * v);
                for (int r = 0; r < RB; r++)
                    z[r][v] += x[r * P1 + k] * w;
            }
        }
        for (int r = 0; r < RB; r++)
            for (int v = 0; v < NV; v++)
                st(Ab + (size_t)(b0 + r) * HW + VL * v, relu(z[r][v]));
    }
    for (; b0 < cnt; b0++) {
        vf z[NV];
        for (int v = 0; v < NV; v++)
            z[v] = (vf){0};
        const float *x = Xb + (size_t)b0 * P1;
        for (int k = 0; k < P1; k++)
            for (int v = 0; v < NV; v++)
                z[v] += x[k] * ld(A1 + k * HW + VL * v);
        for (int v = 0; v < NV; v++)
            st(Ab + (size_t)b0 * HW + VL * v, relu(z[v]));
    }
    if (kind == 0) {
        /* binary: two logits per head, only their difference d matters: p_1 = sigmoid(d) */
        float *gd = sc->H;
        for (int k = 0; k < K; k++)
            for (int v = 0; v < NV; v++)
                st(gd + k * HW + VL * v, ld(G + (2 * k + 1) * HW + VL * v) - ld(G + 2 * k * HW + VL * v));
        for (int k = 0; k < K; k++) {
            vf w[NV];
            for (int v = 0; v < NV; v++)
                w[v] = ld(gd + k * HW + VL * v);
            const float cd = cb[2 * k + 1] - cb[2 * k];
            for (int b = off[k]; b < off[k + 1]; b++) {
                vf s = (vf){0};
                for (int v = 0; v < NV; v++)
                    s += ld(Ab + (size_t)b * HW + VL * v) * w[v];
                E[b] = hsum(s) + cd;
            }
        }
        for (int b = 0; b < cnt; b += VL) {
            const vf p = 1.0f / (1.0f + vexp(-ld(E + b)));
            st(E + b, (p - ld(Y + b)) * wt);
        }
        for (int k = 0; k < K; k++) {
            vf w[NV], h[NV];
            for (int v = 0; v < NV; v++) {
                w[v] = ld(gd + k * HW + VL * v);
                h[v] = (vf){0};
            }
            float hc = 0.0f;
            for (int b = off[k]; b < off[k + 1]; b++) {
                const float e = E[b];
                for (int v = 0; v < NV; v++) {
                    const vf av = ld(Ab + (size_t)b * HW + VL * v);
                    h[v] += e * av;
                    st(DZ + (size_t)b * HW + VL * v, where_pos(av, e * w[v]));
                }
                hc += e;
            }
            for (int v = 0; v < NV; v++) {
                st(gG + (2 * k + 1) * HW + VL * v, h[v]);
                st(gG + 2 * k * HW + VL * v, -h[v]);
            }
            gc[2 * k + 1] = hc;
            gc[2 * k] = -hc;
        }
    } else {
        float o[64], d[64];
        for (int b = 0; b < cnt; b++) {
            const i64 r = R[b];
            int sl = 0;
            while (b >= off[sl + 1])
                sl++;
            const float *a = Ab + (size_t)b * HW;
            const float *Gs = G + (size_t)(sl * C) * HW;
            for (int c = 0; c < C; c++) {
                vf s = (vf){0};
                for (int v = 0; v < NV; v++)
                    s += ld(a + VL * v) * ld(Gs + c * HW + VL * v);
                o[c] = hsum(s) + cb[sl * C + c];
            }
            if (kind == 1) {
                float mx = o[0];
                for (int c = 1; c < C; c++)
                    mx = o[c] > mx ? o[c] : mx;
                float z = 0.0f;
                for (int c = 0; c < C; c++) {
                    d[c] = expf(o[c] - mx);
                    z += d[c];
                }
                const i64 y = yi[r];
                for (int c = 0; c < C; c++)
                    d[c] = (d[c] / z - (c == y ? 1.0f : 0.0f)) * wt;
            } else {
                d[0] = (o[0] - Y[b]) * (wt * 2.0f);
            }
            vf da[NV];
            for (int v = 0; v < NV; v++)
                da[v] = (vf){0};
            for (int c = 0; c < C; c++) {
                float *q = gG + (size_t)(sl * C + c) * HW;
                for (int v = 0; v < NV; v++) {
                    st(q + VL * v, ld(q + VL * v) + d[c] * ld(a + VL * v));
                    da[v] += d[c] * ld(Gs + c * HW + VL * v);
                }
                gc[sl * C + c] += d[c];
            }
            for (int v = 0; v < NV; v++)
                st(DZ + (size_t)b * HW + VL * v, where_pos(ld(a + VL * v), da[v]));
        }
    }
    /* gA1 = Xb^T DZ in blocks of KB columns (the last block takes the rest: at least 2 where P1 allows) */
    int k0 = 0;
    while (k0 < P1) {
        int w = P1 - k0;
        if (w > KB)
            w = (w - KB >= 2 || w > 2 * KB - 2) ? KB : w - 2;
        switch (w) {
#if KB >= 6
        case 6: grad_cols(Xb, DZ, cnt, k0, 6, gA1); break;
#endif
#if KB >= 5
        case 5: grad_cols(Xb, DZ, cnt, k0, 5, gA1); break;
#endif
#if KB >= 4
        case 4: grad_cols(Xb, DZ, cnt, k0, 4, gA1); break;
#endif
#if KB >= 3
        case 3: grad_cols(Xb, DZ, cnt, k0, 3, gA1); break;
#endif
#if KB >= 2
        case 2: grad_cols(Xb, DZ, cnt, k0, 2, gA1); break;
#endif
        default: grad_cols(Xb, DZ, cnt, k0, 1, gA1); break;
        }
        k0 += w;
    }
}

/* Adam (torch.optim.Adam's update, L2 weight decay added to the gradient) on n parameters. */
static void adam(float *restrict th, const float *restrict g, float *restrict m1, float *restrict m2, i64 n,
                 i64 step, float lr, float b1, float b2, float eps, float wd)
{
    const double bc1 = 1.0 - pow((double)b1, (double)step);
    const double bc2 = 1.0 - pow((double)b2, (double)step);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float omb1 = 1.0f - b1, omb2 = 1.0f - b2;
    for (i64 i = 0; i < n; i++) {
        float gi = g[i];
        if (wd != 0.0f)
            gi += wd * th[i];
        const float m = m1[i] + omb1 * (gi - m1[i]);
        const float v = b2 * m2[i] + omb2 * gi * gi;
        m1[i] = m;
        m2[i] = v;
        th[i] -= step_size * m / (sqrtf(v) / bc2_sqrt + eps);
    }
}

/* Arguments of one epoch call, shared by its threads. */
typedef struct {
    int A, P, bc, S_cols, n_tasks, K, C, kind;
    const float *X1, *yf;
    const i64 *yi, *task, *slot_table, *flat, *n_j, *s_m, *step0;
    float *theta, *m1, *m2;
    float lr, b1, b2, eps, wd;
    int next; /* next model to take (atomic) */
    int failed;
} Epoch;

/* Take models one at a time until none is left; each with its own scratch. */
static void *epoch_worker(void *arg)
{
    Epoch *ep = arg;
    const int K = ep->K, C = ep->C, bc = ep->bc, P = ep->P;
    const i64 used = (i64)P1 * HW + (i64)K * C * HW + (i64)K * C;
    const size_t nf = (size_t)bc * (P1 + 2 * HW) + 2 * ((size_t)bc + 16) + (size_t)K * HW + (size_t)P + 64;
    float *buf = calloc(nf, sizeof(float));
    i64 *R = calloc((size_t)bc + 1, sizeof(i64));
    int *off = calloc((size_t)K + 2, sizeof(int));
    if (!buf || !R || !off) {
        __atomic_store_n(&ep->failed, 1, __ATOMIC_SEQ_CST);
    } else {
        Scratch sc;
        sc.Xb = buf;
        sc.Ab = sc.Xb + (size_t)bc * P1;
        sc.DZ = sc.Ab + (size_t)bc * HW;
        sc.E = sc.DZ + (size_t)bc * HW;
        sc.Y = sc.E + (size_t)bc + 16;
        sc.H = sc.Y + (size_t)bc + 16;
        sc.R = R;
        sc.off = off;
        float *g = sc.H + (size_t)K * HW;
        for (;;) {
            const int j = __atomic_fetch_add(&ep->next, 1, __ATOMIC_RELAXED);
            if (j >= ep->A)
                break;
            float *th = ep->theta + (size_t)j * P;
            float *mm1 = ep->m1 + (size_t)j * P;
            float *mm2 = ep->m2 + (size_t)j * P;
            const i64 *slots = ep->slot_table + (size_t)j * ep->n_tasks;
            const i64 *fl = ep->flat + (size_t)j * ep->S_cols;
            for (i64 s = 0; s < ep->s_m[j]; s++) {
                i64 cnt = ep->n_j[j] - s * bc;
                cnt = cnt < 0 ? 0 : (cnt > bc ? bc : cnt);
                model_grad(ep->X1, ep->yf, ep->yi, ep->task, slots, fl + s * bc, (int)cnt, K, C, ep->kind, th, g, &sc);
                adam(th, g, mm1, mm2, used, ep->step0[j] + s + 1, ep->lr, ep->b1, ep->b2, ep->eps, ep->wd);
            }
        }
    }
    free(buf);
    free(R);
    free(off);
    return NULL;
}

/* One epoch for A models. Model j (row j of theta, m1, m2, slot_table) takes s_m[j] steps; step s
 * uses rows flat[j, s*bc : s*bc + cnt] with cnt = clip(n_j[j] - s*bc, 0, bc), Adam step number
 * step0[j] + s + 1. Models are spread over `threads` threads (a model's result does not depend on
 * which). Returns 0, or -1 when scratch memory cannot be allocated. */
int train_epoch(int A, int P, int bc, int S_cols, const float *X1, const float *yf, const i64 *yi,
                const i64 *task, const i64 *slot_table, int n_tasks, const i64 *flat, const i64 *n_j,
                const i64 *s_m, const i64 *step0, float *theta, float *m1, float *m2, int K, int C, int kind,
                float lr, float b1, float b2, float eps, float wd, int threads)
{
    Epoch ep = {A, P, bc, S_cols, n_tasks, K, C, kind, X1, yf, yi, task, slot_table, flat, n_j, s_m, step0,
                theta, m1, m2, lr, b1, b2, eps, wd, 0, 0};
    if (threads > A)
        threads = A;
    if (threads > 64)
        threads = 64;
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tid[started], NULL, epoch_worker, &ep) != 0)
            break; /* fewer threads: the models left are taken by the others */
        started++;
    }
    epoch_worker(&ep);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    return ep.failed ? -1 : 0;
}

int kernel_sizes(void) { return P1 * 1000 + HW; }
