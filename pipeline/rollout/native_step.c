/* One decode step of a Llama model in float32, every layer and the LM head, in one OpenMP parallel
 * region: the `hf` engine's loop calls it for each new token after the prefill
 * (pipeline/rollout/native.py compiles it with the machine's C compiler and loads it with ctypes).
 *
 * Why: a decode step at batch 8 multiplies 8 rows by every weight of the model. Through torch each
 * of its ~250 operators is a parallel region of its own, and with OpenMP's passive waiting (set in
 * pipeline/__init__.py) every region wakes the sleeping worker thread. Here the threads are woken
 * once per token and meet at spin barriers between the stages of a layer, which are balanced and
 * short.
 *
 * Layout: every matrix (N, K) arrives packed as (ceil(N / 32), K, 32): tile t holds rows
 * 32t..32t+31 interleaved along K, so a tile streams from memory in one pass while 8 input rows
 * accumulate against it (16 vector accumulators). gate|up is packed so that tile t holds gate rows
 * 16t..16t+15 and then the same up rows, and its epilogue writes silu(gate) * up directly.
 *
 * The arithmetic is transformers' LlamaDecoderLayer's in its order of operations (RMSNorm as
 * weight * (h * rsqrt(mean(h^2) + eps)), rotate-half RoPE with the model's own cos/sin, softmax
 * attention over the cached positions a row's mask allows, residual adds); sums run in a different
 * order than MKL's and torch's kernels, so results agree up to float rounding.
 */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <omp.h>

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

typedef int v16i __attribute__((vector_size(64)));

static inline v16 vsel(v16i mask, v16 yes, v16 no) { return (v16)(((v16i)yes & mask) | ((v16i)no & ~mask)); }
static inline v16 vmax(v16 a, v16 b) { return vsel(a > b, a, b); }

/* exp of 16 floats: 2^n exp(r) with n the nearest integer to x / ln 2, |r| <= ln 2 / 2, exp(r) by its
 * Taylor series to r^7 (truncation below 1e-8 relative); x clamped to [-87, 88]. */
static inline v16 vexp(v16 x) {
    x = vsel(x < -87.0f, (v16){0} - 87.0f, x);
    x = vsel(x > 88.0f, (v16){0} + 88.0f, x);
    v16 t = x * 1.44269504088896341f + 0.5f;
    v16i n = __builtin_convertvector(t, v16i);
    v16 nf = __builtin_convertvector(n, v16);
    v16i above = nf > t;  /* truncation rounded a negative t up: floor is one less */
    n += above;
    nf = __builtin_convertvector(n, v16);
    v16 r = x - nf * 0.693145751953125f - nf * 1.428606765330187045e-06f;
    v16 p = 1.0f / 5040.0f + r * 0.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    v16i scale = (n + 127) << 23;
    return p * (v16)scale;
}

#define TILE 32
#define MB 8
#define KBLOCK 64
#define MAX_HEAD_DIM 512

typedef struct {
    const float *qkv, *qkv_bias;        /* packed (Nqkv), bias (Nqkv) or NULL */
    const float *o, *o_bias;
    const float *gate_up, *gate_bias, *up_bias;
    const float *down, *down_bias;
    const float *norm_in, *norm_post;
    float eps_in, eps_post;
    float *keys, *values;               /* (batch, kv_heads, capacity, head_dim) */
} Layer;

typedef struct {
    int batch, rows;                    /* real rows; rows padded to a multiple of MB */
    int hidden, heads, kv_heads, head_dim, inter, vocab, layers, capacity, threads;
    float scaling, eps;
    const Layer *layer;
    const float *norm, *head, *head_bias;
    const long long *mask;              /* (batch, capacity): 1 where a position may be attended */
    const float *cos, *sin;             /* (batch, head_dim) */
    float *h;                           /* (rows, hidden): in, the token embeddings */
    float *xn;                          /* (threads, rows, hidden): each thread's normed input */
    float *qkv;                         /* (rows, (heads + 2 kv_heads) head_dim) */
    float *att;                         /* (rows, heads head_dim) */
    float *act;                         /* (rows, inter) */
    float *scores;                      /* (threads, capacity) */
    float *logits;                      /* (batch, vocab): out */
    atomic_int arrived, phase;
} Step;

/* All threads of the team meet: spin (the stages are balanced, the wait is microseconds), then
 * yield if the other thread was descheduled. */
static void barrier(Step *s, int team) {
    if (team == 1) return;
    int phase = atomic_load_explicit(&s->phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&s->arrived, 1, memory_order_acq_rel) == team - 1) {
        atomic_store_explicit(&s->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&s->phase, phase + 1, memory_order_release);
        return;
    }
    for (long spins = 0; atomic_load_explicit(&s->phase, memory_order_acquire) == phase; spins++) {
        if (spins < 4096) __builtin_ia32_pause(); else sched_yield();
    }
}

enum { STORE, ADD, SILU_MUL };

/* Tiles [t0, t1) of x (rows, K) times the packed matrix; the epilogue per `mode`:
 * STORE out = xW^T + b; ADD out += xW^T + b; SILU_MUL out = silu(gate) * up (16 columns a tile). */
static void tiles(const float *w, const float *bias, const float *bias2, const float *x, int K, int N,
                  int rows, int batch, float *out, int ldo, int mode, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        const float *wt = w + (long)t * K * TILE;
        for (int r0 = 0; r0 < rows; r0 += MB) {
            const float *xr = x + (long)r0 * K;
            /* blocks of KBLOCK along K, summed: a rounding error like a blocked GEMM's, not one
             * running sum's over all of K */
            v16 t0s[MB], t1s[MB];
            for (int b = 0; b < MB; b++) { t0s[b] = (v16){0}; t1s[b] = (v16){0}; }
            for (int kb = 0; kb < K; kb += KBLOCK) {
                int ke = kb + KBLOCK < K ? kb + KBLOCK : K;
                v16 a0[MB], a1[MB];
                for (int b = 0; b < MB; b++) { a0[b] = (v16){0}; a1[b] = (v16){0}; }
                for (int k = kb; k < ke; k++) {
                    v16 w0 = *(const v16 *)(wt + (long)k * TILE), w1 = *(const v16 *)(wt + (long)k * TILE + 16);
                    for (int b = 0; b < MB; b++) {
                        float xb = xr[(long)b * K + k];
                        a0[b] += xb * w0;
                        a1[b] += xb * w1;
                    }
                }
                for (int b = 0; b < MB; b++) { t0s[b] += a0[b]; t1s[b] += a1[b]; }
            }
            for (int b = 0; b < MB && r0 + b < batch; b++) {
                float *o = out + (long)(r0 + b) * ldo;
                if (mode == SILU_MUL) {
                    v16 g = t0s[b], u = t1s[b];
                    if (bias) g += *(const v16u *)(bias + t * 16);
                    if (bias2) u += *(const v16u *)(bias2 + t * 16);
                    *(v16u *)(o + t * 16) = g / (1.0f + vexp(-g)) * u;
                } else {
                    float acc[TILE];
                    memcpy(acc, &t0s[b], 64);
                    memcpy(acc + 16, &t1s[b], 64);
                    int n0 = t * TILE, width = N - n0 < TILE ? N - n0 : TILE;
                    for (int j = 0; j < width; j++) {
                        float y = acc[j] + (bias ? bias[n0 + j] : 0.0f);
                        if (mode == ADD) o[n0 + j] += y; else o[n0 + j] = y;
                    }
                }
            }
        }
    }
}

/* This thread's share [lo, hi) of `count` items. */
static void share(int count, int me, int team, int *lo, int *hi) {
    *lo = (int)((long)count * me / team);
    *hi = (int)((long)count * (me + 1) / team);
}

static void matmul(Step *s, const float *w, const float *bias, const float *bias2, const float *x, int K, int N,
                   float *out, int mode, int me, int team) {
    int count = mode == SILU_MUL ? N / 16 : (N + TILE - 1) / TILE, lo, hi;
    share(count, me, team, &lo, &hi);
    tiles(w, bias, bias2, x, K, N, s->rows, s->batch, out, N, mode, lo, hi);
}

/* LlamaRMSNorm of the real rows of h into out: weight * (h * rsqrt(mean(h^2) + eps)). */
static void rms(const Step *s, const float *h, const float *weight, float eps, float *out) {
    int H = s->hidden;
    for (int b = 0; b < s->batch; b++) {
        const float *x = h + (long)b * H;
        v16 part = (v16){0};
        int i = 0;
        for (; i + 16 <= H; i += 16) { v16 v = *(const v16u *)(x + i); part += v * v; }
        float sum = 0.0f;
        for (int j = 0; j < 16; j++) sum += part[j];
        for (; i < H; i++) sum += x[i] * x[i];
        float r = 1.0f / sqrtf(sum / H + eps);
        float *y = out + (long)b * H;
        for (i = 0; i < H; i++) y[i] = weight[i] * (x[i] * r);
    }
}

/* rotate-half RoPE: y = x * cos + rotate_half(x) * sin. */
static void rope(const float *x, const float *cs, const float *sn, int D, float *y) {
    int half = D / 2;
    for (int i = 0; i < half; i++) {
        y[i] = x[i] * cs[i] + (-x[i + half]) * sn[i];
        y[i + half] = x[i + half] * cs[i + half] + x[i] * sn[i + half];
    }
}

static float dot(const float *a, const float *b, int D) {
    v16 part = (v16){0};
    int i = 0;
    for (; i + 16 <= D; i += 16) part += *(const v16u *)(a + i) * *(const v16u *)(b + i);
    float sum = 0.0f;
    for (int j = 0; j < 16; j++) sum += part[j];
    for (; i < D; i++) sum += a[i] * b[i];
    return sum;
}

/* Row b, key/value head g at position n: RoPE the key into the cache with the value, then each of
 * the g's query heads attends over the positions the mask allows. */
static void attend(Step *s, const Layer *L, int n, int b, int g, float *scores) {
    int D = s->head_dim, H = s->heads, KV = s->kv_heads, C = s->capacity, group = H / KV;
    const float *cs = s->cos + (long)b * D, *sn = s->sin + (long)b * D;
    const float *row = s->qkv + (long)b * (H + 2 * KV) * D;
    long base = ((long)b * KV + g) * C;
    const float *keys = L->keys + base * D, *values = L->values + base * D;
    rope(row + (long)(H + g) * D, cs, sn, D, L->keys + (base + n) * D);
    memcpy(L->values + (base + n) * D, row + (long)(H + KV + g) * D, sizeof(float) * D);
    const long long *mask = s->mask + (long)b * C;
    float q[MAX_HEAD_DIM];
    for (int j = 0; j < group; j++) {
        int head = g * group + j;
        rope(row + (long)head * D, cs, sn, D, q);
        float top = -INFINITY;
        for (int p = 0; p <= n; p++) {
            if (!mask[p]) continue;
            scores[p] = dot(q, keys + (long)p * D, D) * s->scaling;
            if (scores[p] > top) top = scores[p];
        }
        float total = 0.0f;
        for (int p = 0; p <= n; p++) {
            if (!mask[p]) continue;
            scores[p] = expf(scores[p] - top);
            total += scores[p];
        }
        float *out = s->att + (long)b * H * D + (long)head * D;
        memset(out, 0, sizeof(float) * D);
        for (int p = 0; p <= n; p++) {
            if (!mask[p]) continue;
            float w = scores[p] / total;
            const float *v = values + (long)p * D;
            for (int i = 0; i < D; i++) out[i] += w * v[i];
        }
    }
}

int native_step_abi(void) { return 1; }

void native_exp(const float *x, float *y, long n) {  /* vexp over an array, for the tests */
    long i = 0;
    for (; i + 16 <= n; i += 16) *(v16u *)(y + i) = vexp(*(const v16u *)(x + i));
    for (; i < n; i++) { v16 v = (v16){0} + x[i]; y[i] = vexp(v)[0]; }
}

/* The packed layout: dst (ceil(N / 32), K, 32) from the rows of `parts` stacked (N rows in all),
 * zero rows padding N; with `pairs`, parts are (gate, up) of `counts[0]` rows each and tile t
 * holds gate rows 16t..16t+15, then the same up rows. */
void native_tile(const float *const *parts, const int *counts, int nparts, int pairs, int K, float *dst, int threads) {
    int N = 0;
    for (int i = 0; i < nparts; i++) N += counts[i];
    int count = pairs ? counts[0] / 16 : (N + TILE - 1) / TILE;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < count; t++) {
        float *out = dst + (long)t * K * TILE;
        const float *src[TILE];
        for (int r = 0; r < TILE; r++) {
            src[r] = NULL;
            if (pairs) {
                src[r] = parts[r < 16 ? 0 : 1] + (long)(t * 16 + r % 16) * K;
            } else {
                int n = t * TILE + r;
                for (int i = 0; i < nparts && src[r] == NULL; i++) {
                    if (n < counts[i]) src[r] = parts[i] + (long)n * K; else n -= counts[i];
                }
            }
        }
        for (int k0 = 0; k0 < K; k0 += 16) {  /* a 32 x 16 block at a time: whole cache lines in and out */
            int width = K - k0 < 16 ? K - k0 : 16;
            float block[TILE][16];
            for (int r = 0; r < TILE; r++)
                for (int j = 0; j < width; j++) block[r][j] = src[r] ? src[r][k0 + j] : 0.0f;
            for (int j = 0; j < width; j++)
                for (int r = 0; r < TILE; r++) out[(long)(k0 + j) * TILE + r] = block[r][j];
        }
    }
}

/* One token per row of logits (B, V), drawn as the sampler's `_inverse_cdf` draws it from the
 * probabilities softmax(logits / temperature) with the `blocked` ids at 0 (min_new_tokens): the first
 * token whose cumulative probability exceeds u[b] times the total (sums in float64); and
 * logp = log_softmax(logits / temperature)[token], before blocking. `scratch`: (B, V) floats. */
#define DRAW_BLOCK 1024
#define DRAW_BLOCKS 4096
void native_draw(const float *logits, int B, int V, float temperature, const long long *blocked, int nblocked,
                 const double *u, long long *token, float *logp, float *scratch, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int b = 0; b < B; b++) {
        const float *x = logits + (long)b * V;
        float *e = scratch + (long)b * V;
        int i = 0;
        for (; i + 16 <= V; i += 16) *(v16u *)(e + i) = *(const v16u *)(x + i) / temperature;
        for (; i < V; i++) e[i] = x[i] / temperature;
        /* the blocked ids leave the softmax before its maximum is taken (as torch's -inf fill) */
        double blocked_mass = 0.0;  /* their exp(scaled - top), for the log-prob, which counts them */
        int shut = 0;
        for (int j = 0; j < nblocked; j++) {
            long long id = blocked[j];
            if (id >= 0 && id < V && e[id] != -INFINITY) { e[id] = -INFINITY; shut++; }
        }
        v16 vtop = (v16){0} - INFINITY;
        for (i = 0; i + 16 <= V; i += 16) vtop = vmax(vtop, *(const v16u *)(e + i));
        float top = -INFINITY;
        for (int j = 0; j < 16; j++) top = vtop[j] > top ? vtop[j] : top;
        for (; i < V; i++) top = e[i] > top ? e[i] : top;
        if (shut == V) top = 0.0f;  /* everything blocked: no open token */
        static __thread double block[DRAW_BLOCKS];
        int blocks = (V + DRAW_BLOCK - 1) / DRAW_BLOCK;
        for (int k = 0; k < blocks; k++) {
            int lo = k * DRAW_BLOCK, hi = lo + DRAW_BLOCK < V ? lo + DRAW_BLOCK : V;
            v16 part = (v16){0};
            i = lo;
            for (; i + 16 <= hi; i += 16) {
                v16 v = vexp(*(v16u *)(e + i) - top);
                *(v16u *)(e + i) = v;
                part += v;
            }
            double sum = 0.0;
            for (int j = 0; j < 16; j++) sum += part[j];
            for (; i < hi; i++) { e[i] = expf(e[i] - top); sum += e[i]; }
            block[k] = sum;
        }
        for (int j = 0; j < nblocked; j++) {  /* exp(-inf) came out as the clamp's ~1e-38: make it 0 */
            long long id = blocked[j];
            if (id < 0 || id >= V || e[id] == 0.0f) continue;
            block[id / DRAW_BLOCK] -= e[id];
            e[id] = 0.0f;
            blocked_mass += exp((double)(x[id] / temperature) - top);
        }
        double open = 0.0;
        for (int k = 0; k < blocks; k++) open += block[k];
        double goal = u[b] * open, cdf = 0.0;
        long long pick = V - 1;
        int k = 0;
        while (k < blocks - 1 && cdf + block[k] <= goal) cdf += block[k++];
        long long last = -1;  /* the last open token: the pick if rounding leaves goal unreached */
        for (i = k * DRAW_BLOCK; i < V; i++) {
            if (e[i] <= 0.0f) continue;
            cdf += e[i];
            last = i;
            if (cdf > goal) break;
        }
        if (last >= 0) pick = last;
        token[b] = pick;
        logp[b] = (float)((double)(x[pick] / temperature) - top - log(open + blocked_mass));
    }
}

/* One new token for every row: s->h holds the embeddings of the tokens at cached position n (the
 * cache holds positions 0..n-1); writes position n into every layer's cache and s->logits. */
void native_step(Step *s, int n) {
    #pragma omp parallel num_threads(s->threads)
    {
        int me = omp_get_thread_num(), team = omp_get_num_threads();
        int H = s->hidden, D = s->head_dim, width = (s->heads + 2 * s->kv_heads) * D, lo, hi;
        float *xn = s->xn + (long)me * s->rows * H;
        float *scores = s->scores + (long)me * s->capacity;
        for (int l = 0; l < s->layers; l++) {
            const Layer *L = s->layer + l;
            rms(s, s->h, L->norm_in, L->eps_in, xn);
            matmul(s, L->qkv, L->qkv_bias, NULL, xn, H, width, s->qkv, STORE, me, team);
            barrier(s, team);
            share(s->batch * s->kv_heads, me, team, &lo, &hi);
            for (int task = lo; task < hi; task++) attend(s, L, n, task / s->kv_heads, task % s->kv_heads, scores);
            barrier(s, team);
            matmul(s, L->o, L->o_bias, NULL, s->att, s->heads * D, H, s->h, ADD, me, team);
            barrier(s, team);
            rms(s, s->h, L->norm_post, L->eps_post, xn);
            matmul(s, L->gate_up, L->gate_bias, L->up_bias, xn, H, s->inter, s->act, SILU_MUL, me, team);
            barrier(s, team);
            matmul(s, L->down, L->down_bias, NULL, s->act, s->inter, H, s->h, ADD, me, team);
            barrier(s, team);
        }
        rms(s, s->h, s->norm, s->eps, xn);
        matmul(s, s->head, s->head_bias, NULL, xn, H, s->vocab, s->logits, STORE, me, team);
    }
}
