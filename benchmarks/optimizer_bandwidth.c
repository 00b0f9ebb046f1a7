/*
 * optimizer_bandwidth.c -- how close Descent's optimizer steps come to memory bandwidth.
 *
 * For each size n (one tensor of n floats) and each built-in optimizer this measures the median
 * wall time of descent_optimizer_step and reports ns/element, GB/s counted as the bytes the
 * update must move, and the ratio to a bandwidth reference measured in the same run: a plain
 * OpenMP stream that reads 4 arrays and writes 3 of them in place (28 B/element, Adam's memory
 * pattern), compiled with the same flags and run on the same thread count and arrays.
 *
 *   bytes/element counted: sgd 12 (read p,g; write p)
 *                          momentum, nesterov, adagrad, rmsprop 20 (read p,g,s; write p,s)
 *                          adam, adamw 28 (read p,g,m,v; write p,m,v)
 *
 * Each optimizer is measured twice through the public API: with its defaults (check_finite=1:
 * the gradient is scanned for NaN/Inf before anything is written) and created with
 * "check_finite=0" (the scan skipped: the update alone).
 *
 * Diagnostics (to explain a gap rather than only show it):
 *   plain sgd/momentum/adam  the same update written as a plain OpenMP loop in this file
 *                            (the best any implementation of that memory pattern does here)
 *   read g (plain)           a read-only OpenMP pass over g (4 B/element): what a separate
 *                            NaN/Inf pre-scan of the gradient must cost at least
 *
 * Threads are pinned (OMP_PROC_BIND=true, OMP_PLACES=cores) unless the environment sets a policy
 * or --no-bind is given: unpinned, this 2-vCPU VM sometimes runs both OpenMP threads on one CPU.
 *
 * Method: clock_gettime(CLOCK_MONOTONIC) around every single call; medians over all samples.
 * All kernels of one size are measured in interleaved rounds (rotating order), so slow phases
 * of this shared, noisy machine hit every kernel alike. Every kernel is warmed up first (state
 * created, pages touched); for sizes whose arrays fit in cache each round re-warms it with one
 * untimed call.
 *
 * With --baseline LIB (baseline.h) it compares this library with another instead: for each
 * thread count, size and optimizer, both libraries step their own copy of the same tensor in
 * alternating runs of about --run-seconds (A B, then B A), --pairs pairs, and the median of
 * the pairs' time ratios (linked / baseline) is printed with the range.
 *
 * Usage: optimizer_bandwidth [--sizes 1e3,1e4,...] [--threads 2,1] [--reps N]
 *                            [--optimizers adam,sgd] [--threshold N] [--no-diagnostics]
 *                            [--no-bind] [--baseline LIB [--pairs 10] [--run-seconds 0.3]]
 * Build and run: benchmarks/build.sh (docs/benchmarks.md).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baseline.h"
#include "descent.h"

/* ---- small utilities ---------------------------------------------------------------------*/

static void die(const char *what) {
    fprintf(stderr, "optimizer_bandwidth: %s\n", what);
    exit(1);
}

/* Every library status is checked: a failing call ends the run with the library's message. */
static void check(int32_t status, const char *call) {
    if (status != DESCENT_OK) {
        fprintf(stderr, "optimizer_bandwidth: %s failed: %s (%s)\n", call,
                descent_status_name(status), descent_last_error());
        exit(1);
    }
}

static double now_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime(CLOCK_MONOTONIC) failed");
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* q-quantile of the sorted v[0..n), linearly interpolated. */
static double quantile_sorted(const double *v, int n, double q) {
    double pos = q * (n - 1);
    int lo = (int)pos;
    int hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

static float *alloc_floats(int64_t n) {
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) die("out of memory allocating benchmark arrays");
    return p;
}

/* ---- the plain OpenMP kernels (reference and diagnostics) -------------------------------*/
/* Parallel exactly when the library would be (n >= threshold and more than one thread), each
 * thread on one contiguous slice, as the library's runner does. Below the threshold they run a
 * plain serial loop with no OpenMP call at all: the ideal a library step can be compared with. */
static int64_t g_threshold = 32768;   /* the library's documented threshold (descent.h) */

static inline int team(int64_t n, int threads) { return n >= g_threshold && threads > 1 ? threads : 1; }

#define SLICE(n)                                                   \
    int tid_ = omp_get_thread_num(), nth_ = omp_get_num_threads(); \
    int64_t lo = (n) * tid_ / nth_, hi = (n) * (tid_ + 1) / nth_

/* Runs BODY(lo, hi) over [0, n): serially, or one slice per thread. */
#define PLAIN_KERNEL(n, threads, BODY)                                 \
    do {                                                               \
        const int nth = team((n), (threads));                          \
        if (nth == 1) { int64_t lo = 0, hi = (n); BODY; }              \
        else {                                                         \
            _Pragma("omp parallel num_threads(nth)")                   \
            { SLICE(n); BODY; }                                        \
        }                                                              \
    } while (0)

/* The bandwidth reference: reads a, b, c, d; writes a, b, c in place (28 B/element). */
static void ref_range(float *restrict a, float *restrict b, float *restrict c,
                      const float *restrict d, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        float di = d[i];
        float ai = a[i] + 0.1f * (di - a[i]);
        float bi = b[i] + 0.001f * (di * di - b[i]);
        a[i] = ai;
        b[i] = bi;
        c[i] = c[i] - 1e-3f * ai;
    }
}
static void ref_4r3w(float *a, float *b, float *c, const float *d, int64_t n, int threads) {
    PLAIN_KERNEL(n, threads, ref_range(a, b, c, d, lo, hi));
}

/* The optimizers' updates as plain loops, formulas as in Sources/CDescentKernels/optimizers/. */
static void sgd_range(float *restrict p, const float *restrict g, float lr, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) p[i] -= lr * g[i];
}
static void plain_sgd(float *p, const float *g, int64_t n, int threads, float lr) {
    PLAIN_KERNEL(n, threads, sgd_range(p, g, lr, lo, hi));
}

static void momentum_range(float *restrict p, const float *restrict g, float *restrict v, float lr,
                           float mu, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        float vi = mu * v[i] - lr * g[i];
        v[i] = vi;
        p[i] += vi;
    }
}
static void plain_momentum(float *p, const float *g, float *v, int64_t n, int threads, float lr,
                           float mu) {
    PLAIN_KERNEL(n, threads, momentum_range(p, g, v, lr, mu, lo, hi));
}

static void adam_range(float *restrict p, const float *restrict g, float *restrict m,
                       float *restrict v, float one_minus_b1, float one_minus_b2, float eps,
                       float step_size, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        float gi = g[i];
        float mi = m[i] + one_minus_b1 * (gi - m[i]);
        float vi = v[i] + one_minus_b2 * (gi * gi - v[i]);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - step_size * mi / (sqrtf(vi) + eps);
    }
}
static void plain_adam(float *p, const float *g, float *m, float *v, int64_t n, int threads,
                       float one_minus_b1, float one_minus_b2, float eps, float step_size) {
    PLAIN_KERNEL(n, threads, adam_range(p, g, m, v, one_minus_b1, one_minus_b2, eps, step_size, lo, hi));
}

/* A read-only pass over g doing the NaN/Inf test (max of the exponent bits, 4 B/element). */
static uint32_t scan_range(const float *restrict g, int64_t lo, int64_t hi) {
    uint32_t worst = 0;
    for (int64_t i = lo; i < hi; i++) {
        uint32_t u;
        memcpy(&u, &g[i], sizeof u);
        u &= 0x7f800000u;
        worst = u > worst ? u : worst;
    }
    return worst;
}
static void plain_scan(const float *g, int64_t n, int threads) {
    uint32_t worst[1024] = {0};
    PLAIN_KERNEL(n, threads, worst[omp_get_thread_num()] = scan_range(g, lo, hi));
    for (int t = 0; t < team(n, threads); t++)
        if (worst[t] == 0x7f800000u) die("plain scan found a NaN/Inf in the benchmark's gradient");
}

/* ---- what is measured --------------------------------------------------------------------*/

typedef enum {
    K_REF, K_PLAIN_SCAN, K_PLAIN_SGD, K_PLAIN_MOMENTUM, K_PLAIN_ADAM, K_STEP
} kernel_kind;

typedef struct {
    const char *name;        /* optimizer name, or the diagnostic's name */
    const char *base;        /* for diagnostics: the optimizer they belong to */
    kernel_kind kind;
    int bytes;               /* bytes per element the update must move */
    /* K_STEP */
    descent_optimizer *opt;
    int check_finite;        /* 1: the default step (NaN/Inf pre-scan); 0: created with check_finite=0 */
    /* results */
    double *samples;
    int nsamples;
    double median_ns, q25_ns, q75_ns;
} kernel;

typedef struct {
    int64_t n;
    int threads;
    float *p, *g;            /* shared by all kernels; the updates keep them finite */
    float *m, *v, *vel;      /* state of the plain loops (and the reference's arrays) */
} arrays;

static const struct { const char *name; int bytes; } OPTIMIZERS[] = {
    {"sgd", 12}, {"momentum", 20}, {"nesterov", 20}, {"adagrad", 20},
    {"rmsprop", 20}, {"adam", 28}, {"adamw", 28},
};
#define N_OPTIMIZERS (int)(sizeof OPTIMIZERS / sizeof OPTIMIZERS[0])

/* Adam defaults read from the library (main), so the plain loop does the same math. */
static float adam_omb1 = 0.1f, adam_omb2 = 0.001f, adam_eps = 1e-7f, adam_step_size = 1e-3f;

static void run_kernel(kernel *k, arrays *a) {
    int64_t n = a->n;
    switch (k->kind) {
    case K_REF: ref_4r3w(a->m, a->v, a->p, a->g, n, a->threads); break;
    case K_PLAIN_SCAN: plain_scan(a->g, n, a->threads); break;
    case K_PLAIN_SGD: plain_sgd(a->p, a->g, n, a->threads, 0.01f); break;
    case K_PLAIN_MOMENTUM: plain_momentum(a->p, a->g, a->vel, n, a->threads, 0.01f, 0.9f); break;
    case K_PLAIN_ADAM:
        plain_adam(a->p, a->g, a->m, a->v, n, a->threads, adam_omb1, adam_omb2, adam_eps, adam_step_size);
        break;
    case K_STEP: {
        float *params[1] = {a->p};
        const float *grads[1] = {a->g};
        check(descent_optimizer_step(k->opt, 1, params, grads, &n), "descent_optimizer_step");
        break;
    }
    }
}

/* ---- options -----------------------------------------------------------------------------*/

static int64_t sizes[64];
static int n_sizes;
static int thread_list[16];
static int n_threads;
static int reps_override;
static int diagnostics = 1;
static int bind_threads = 1;
static int bind_set_here;   /* the benchmark set OMP_PROC_BIND/OMP_PLACES itself */
static char optimizer_filter[512];
static const char *baseline_path;   /* --baseline */
static int baseline_pairs = 10;
static double baseline_run_seconds = 0.3;

static int optimizer_selected(const char *name) {
    if (!optimizer_filter[0]) return 1;
    char copy[512];
    snprintf(copy, sizeof copy, "%s", optimizer_filter);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
        if (strcmp(tok, name) == 0) return 1;
    return 0;
}

static int64_t parse_count(const char *text) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !(v >= 1) || v > 4e9 || v != floor(v)) {
        fprintf(stderr, "optimizer_bandwidth: not a whole number >= 1: '%s'\n", text);
        exit(2);
    }
    return (int64_t)v;
}

static int parse_list(const char *text, int64_t *out, int cap) {
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", text);
    int k = 0;
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        if (k == cap) die("too many list entries");
        out[k++] = parse_count(tok);
    }
    if (k == 0) die("empty list");
    return k;
}

static void usage(void) {
    puts("usage: optimizer_bandwidth [--sizes 1e3,1e4,1e5,1e6,1e7,5e7] [--threads 2,1]\n"
         "                           [--reps N] [--optimizers sgd,adam,...] [--threshold N]\n"
         "                           [--no-diagnostics]\n"
         "  --sizes       elements of the one tensor (default 1e3,1e4,1e5,1e6,1e7,5e7)\n"
         "  --threads     thread counts to run, one full table each (default: the library's\n"
         "                default count, then 1)\n"
         "  --reps        timed calls per kernel and size (default: 4000 at 1e3 down to 25 at 1e7 and 5e7)\n"
         "  --optimizers  subset of the built-in optimizers (default: all seven)\n"
         "  --threshold   element count from which the plain OpenMP kernels go parallel\n"
         "                (default 32768, the library's documented threshold)\n"
         "  --no-diagnostics  skip the plain-loop and read-g diagnostics\n"
         "  --no-bind     do not pin OpenMP threads (default: OMP_PROC_BIND=true OMP_PLACES=cores\n"
         "                unless OMP_PROC_BIND, OMP_PLACES or KMP_AFFINITY is set). Unpinned, the\n"
         "                kernel sometimes runs both threads on one CPU of this 2-vCPU VM.\n"
         "  --baseline LIB  compare with another libdescent.so in alternating runs instead\n"
         "  --pairs N       pairs of runs per optimizer and size with --baseline (default 10)\n"
         "  --run-seconds S length of each run with --baseline (default 0.3)");
}

static void parse_args(int argc, char **argv) {
    static const int64_t default_sizes[] = {1000, 10000, 100000, 1000000, 10000000, 50000000};
    n_sizes = 6;
    memcpy(sizes, default_sizes, sizeof default_sizes);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); exit(0); }
        else if (!strcmp(a, "--no-diagnostics")) diagnostics = 0;
        else if (!strcmp(a, "--no-bind")) bind_threads = 0;
        else if (!val) { usage(); exit(2); }
        else if (!strcmp(a, "--sizes")) { n_sizes = parse_list(val, sizes, 64); i++; }
        else if (!strcmp(a, "--threads")) {
            int64_t t[16];
            n_threads = parse_list(val, t, 16);
            for (int j = 0; j < n_threads; j++) {
                if (t[j] > 1024) die("--threads: at most 1024");
                thread_list[j] = (int)t[j];
            }
            i++;
        } else if (!strcmp(a, "--reps")) { reps_override = (int)parse_count(val); i++; }
        else if (!strcmp(a, "--threshold")) { g_threshold = parse_count(val); i++; }
        else if (!strcmp(a, "--baseline")) { baseline_path = val; i++; }
        else if (!strcmp(a, "--pairs")) { baseline_pairs = (int)parse_count(val); i++; }
        else if (!strcmp(a, "--run-seconds")) {
            baseline_run_seconds = atof(val);
            if (!(baseline_run_seconds > 0)) die("--run-seconds: must be > 0");
            i++;
        }
        else if (!strcmp(a, "--optimizers")) {
            snprintf(optimizer_filter, sizeof optimizer_filter, "%s", val);
            int any = 0;
            for (int j = 0; j < N_OPTIMIZERS; j++) any |= optimizer_selected(OPTIMIZERS[j].name);
            if (!any) die("--optimizers: none of the names is a built-in optimizer");
            i++;
        } else { usage(); exit(2); }
    }
}

/* ---- machine description -----------------------------------------------------------------*/

static void print_machine(void) {
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(model, sizeof model, "%s", c + 2);
                    model[strcspn(model, "\n")] = 0;
                }
                break;
            }
        fclose(f);
    }
    long cpus = 0;
    f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) cpus += !strncmp(line, "processor", 9);
        fclose(f);
    }
    char l3[64] = "?";
    f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    if (f) {
        if (fgets(l3, sizeof l3, f)) l3[strcspn(l3, "\n")] = 0;
        fclose(f);
    }
    Dl_info info;
    const char *omp_lib = dladdr((void *)omp_get_max_threads, &info) && info.dli_fname ? info.dli_fname : "?";
    printf("# Descent optimizer bandwidth benchmark\n\n");
    printf("- library: libdescent %s; OpenMP runtime: %s\n", descent_version(), omp_lib);
    printf("- CPU: %s, %ld logical CPUs, L3 %s\n", model, cpus, l3);
#if defined(__clang__)
    printf("- benchmark compiled by: %s\n", __VERSION__);
#elif defined(__GNUC__)
    printf("- benchmark compiled by: gcc %s\n", __VERSION__);
#endif
    printf("- parallel threshold: %lld elements (library: descent.h; plain kernels: the same)\n",
           (long long)g_threshold);
    const char *vars[] = {"OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY",
                          "KMP_BLOCKTIME", "KMP_AFFINITY", "DESCENT_NUM_THREADS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) printf("- environment: %s=%s\n", vars[i], getenv(vars[i]));
    /* Timer resolution and cost, for reading the small-n numbers. */
    double t0 = now_ns(), t1 = t0;
    int calls = 0;
    while (t1 - t0 < 1e6) { t1 = now_ns(); calls++; }
    printf("- thread binding: %s\n",
           bind_set_here  ? "pinned by the benchmark (OMP_PROC_BIND=true, OMP_PLACES=cores)"
           : bind_threads ? "as the environment says (OMP_PROC_BIND/OMP_PLACES/KMP_AFFINITY set)"
                          : "off (--no-bind): the OS places the threads");
    printf("- clock_gettime(CLOCK_MONOTONIC): %.0f ns per call (included in every sample)\n",
           (t1 - t0) / calls);
}

/* Where the OpenMP threads run, and what an empty parallel region costs: unpinned threads on
 * this VM sometimes share one CPU, and then every parallel region costs tens of microseconds. */
static void print_placement(int threads, const char *when) {
    if (threads < 2) return;
    enum { R = 2000 };
    static double t[R];
    int distinct = 0;
    for (int r = 0; r < R; r++) {
        int cpu[1024], team_size = 1;
        double t0 = now_ns();
#pragma omp parallel num_threads(threads)
        {
            cpu[omp_get_thread_num()] = sched_getcpu();
            if (omp_get_thread_num() == 0) team_size = omp_get_num_threads();
        }
        t[r] = now_ns() - t0;
        int ok = team_size == threads;
        for (int i = 0; ok && i < team_size; i++)
            for (int j = 0; j < i; j++) ok &= cpu[i] != cpu[j];
        distinct += ok;
    }
    qsort(t, R, sizeof(double), cmp_double);
    printf("- OpenMP placement %s: %d threads on distinct CPUs in %d%% of %d regions; "
           "an empty parallel region takes %.2f us (median)\n",
           when, threads, 100 * distinct / R, R, quantile_sorted(t, R, 0.5) / 1e3);
}

/* ---- one thread count, all sizes ----------------------------------------------------------*/

#define MAX_KERNELS 24
typedef struct {
    int64_t n;
    int nk;
    kernel k[MAX_KERNELS];
    int reps;
} size_result;

static size_result results[64];

static kernel *find(size_result *r, kernel_kind kind, const char *name) {
    for (int i = 0; i < r->nk; i++)
        if (r->k[i].kind == kind && (!name || !strcmp(r->k[i].name, name))) return &r->k[i];
    return NULL;
}

static kernel *find_step(size_result *r, const char *name, int check_finite) {
    for (int i = 0; i < r->nk; i++)
        if (r->k[i].kind == K_STEP && r->k[i].check_finite == check_finite && !strcmp(r->k[i].name, name))
            return &r->k[i];
    return NULL;
}

/* The plain-loop diagnostic of an optimizer, if there is one. */
static kernel *find_plain(size_result *r, const char *name) {
    for (int i = 0; i < r->nk; i++)
        if (r->k[i].base && !strcmp(r->k[i].base, name)) return &r->k[i];
    return NULL;
}

static void measure_size(size_result *r, int64_t n, int threads) {
    memset(r, 0, sizeof *r);
    r->n = n;
    arrays a = {n, threads, alloc_floats(n), alloc_floats(n), alloc_floats(n), alloc_floats(n),
                alloc_floats(n)};
    /* First touch with the same static partition the kernels use. */
    const int nth = team(n, threads);
#pragma omp parallel for num_threads(nth) if (nth > 1) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        a.g[i] = 1e-3f * (float)(1 + i % 13);   /* finite, non-zero, no denormals anywhere */
        a.p[i] = 1.0f;
        a.m[i] = 0.0f;
        a.v[i] = 0.0f;
        a.vel[i] = 0.0f;
    }

    int nk = 0;
    kernel *K = r->k;
    K[nk++] = (kernel){.name = "reference 4r/3w", .kind = K_REF, .bytes = 28};
    if (diagnostics) {
        K[nk++] = (kernel){.name = "read g (plain)", .kind = K_PLAIN_SCAN, .bytes = 4};
        K[nk++] = (kernel){.name = "plain sgd", .base = "sgd", .kind = K_PLAIN_SGD, .bytes = 12};
        K[nk++] = (kernel){.name = "plain momentum", .base = "momentum", .kind = K_PLAIN_MOMENTUM, .bytes = 20};
        K[nk++] = (kernel){.name = "plain adam", .base = "adam", .kind = K_PLAIN_ADAM, .bytes = 28};
    }
    for (int i = 0; i < N_OPTIMIZERS; i++) {
        if (!optimizer_selected(OPTIMIZERS[i].name)) continue;
        for (int check_finite = 1; check_finite >= 0; check_finite--) {
            kernel *k = &K[nk++];
            *k = (kernel){.name = OPTIMIZERS[i].name, .kind = K_STEP, .bytes = OPTIMIZERS[i].bytes,
                          .check_finite = check_finite};
            check(descent_optimizer_create(k->name, check_finite ? NULL : "check_finite=0", &k->opt),
                  "descent_optimizer_create");
        }
    }
    r->nk = nk;

    /* Repetitions: ~0.2 s of samples per kernel at 1 ns/element, between 25 and 4000, taken in
     * up to 25 interleaved rounds. */
    int reps = reps_override ? reps_override : (int)fmin(4000, fmax(25, round(2e8 / (double)n)));
    int rounds = reps < 25 ? reps : 25;
    int per_round = (reps + rounds - 1) / rounds;
    reps = rounds * per_round;
    r->reps = reps;
    int rewarm = (double)n * 28 <= 64.0 * 1024 * 1024;   /* arrays may live in cache */

    for (int i = 0; i < nk; i++) {
        K[i].samples = malloc(sizeof(double) * (size_t)reps);
        if (!K[i].samples) die("out of memory");
        for (int w = 0; w < 3; w++) run_kernel(&K[i], &a);   /* state, page faults, caches */
    }
    for (int round = 0; round < rounds; round++)
        for (int j = 0; j < nk; j++) {
            kernel *k = &K[(j + round) % nk];
            if (rewarm) run_kernel(k, &a);
            for (int c = 0; c < per_round; c++) {
                double t0 = now_ns();
                run_kernel(k, &a);
                double t1 = now_ns();
                k->samples[k->nsamples++] = t1 - t0;
            }
        }

    for (int i = 0; i < nk; i++) {
        kernel *k = &K[i];
        qsort(k->samples, (size_t)k->nsamples, sizeof(double), cmp_double);
        k->median_ns = quantile_sorted(k->samples, k->nsamples, 0.5);
        k->q25_ns = quantile_sorted(k->samples, k->nsamples, 0.25);
        k->q75_ns = quantile_sorted(k->samples, k->nsamples, 0.75);
        free(k->samples);
        k->samples = NULL;
        if (k->opt) {
            double steps = 0;
            check(descent_optimizer_get(k->opt, "step", &steps), "descent_optimizer_get");
            if (steps != 3 + reps + (rewarm ? rounds : 0)) die("step count does not match the calls made");
            descent_optimizer_free(k->opt);
            k->opt = NULL;
        }
    }
    /* The parameters must still be finite after all the updates. */
    for (int64_t i = 0; i < n; i += 1 + n / 1000)
        if (!isfinite(a.p[i])) die("a parameter became non-finite; the benchmark's data is broken");
    free(a.p); free(a.g); free(a.m); free(a.v); free(a.vel);
}

static double gbps(const kernel *k, int64_t n) { return k->bytes * (double)n / k->median_ns; }
static double vs_ref(const kernel *k, size_result *r) { return gbps(k, r->n) / gbps(find(r, K_REF, NULL), r->n); }

static void print_tables(int nres) {
    printf("\n### Bandwidth reference (plain OpenMP, reads 4 arrays, writes 3; 28 B/element)\n\n");
    printf("| n | reps | us/call | ns/elem | GB/s | read-only pass over g, GB/s (4 B/elem) |\n");
    printf("|---:|---:|---:|---:|---:|---:|\n");
    for (int s = 0; s < nres; s++) {
        size_result *r = &results[s];
        kernel *ref = find(r, K_REF, NULL), *scan = find(r, K_PLAIN_SCAN, NULL);
        printf("| %.0e | %d | %.2f | %.3f | %.1f | ", (double)r->n, r->reps, ref->median_ns / 1e3,
               ref->median_ns / r->n, gbps(ref, r->n));
        if (scan) printf("%.1f |\n", gbps(scan, r->n)); else printf("- |\n");
    }

    printf("\n### Optimizer steps (descent_optimizer_step, medians)\n\n");
    printf("check_finite 1 = the default step (gradient scanned for NaN/Inf first); 0 = the optimizer "
           "created with \"check_finite=0\" (the update alone). vs ref = (bytes the update must move / "
           "step time) / reference GB/s. iqr = interquartile range / median.\n\n");
    printf("| optimizer | n | check_finite | B/elem | us/step | ns/elem | GB/s | vs ref | iqr |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int o = 0; o < N_OPTIMIZERS; o++)
        for (int s = 0; s < nres; s++)
            for (int c = 1; c >= 0; c--) {
                size_result *r = &results[s];
                kernel *k = find_step(r, OPTIMIZERS[o].name, c);
                if (!k) continue;
                printf("| %s | %.0e | %d | %d | %.2f | %.3f | %.1f | %.2f | %.0f%% |\n", k->name,
                       (double)r->n, c, k->bytes, k->median_ns / 1e3, k->median_ns / r->n,
                       gbps(k, r->n), vs_ref(k, r), 100 * (k->q75_ns - k->q25_ns) / k->median_ns);
            }

    if (!diagnostics) return;
    printf("\n### Where the time goes (sgd, momentum, adam; ns/element, medians)\n\n");
    printf("step = default step; cf=0 = step with check_finite=0; scan = step - cf=0 (what the "
           "NaN/Inf pre-scan costs); read g = a plain read-only pass over g, the least a separate "
           "scan costs; plain = the same update as a plain OpenMP loop in this file; cf=0 - plain = "
           "the library's cost beyond the plain loop, per call (shown up to n = 1e5; beyond that "
           "it is below the noise).\n\n");
    printf("| optimizer | n | step | cf=0 | scan | read g | plain | cf=0 - plain (us) | step vs ref | "
           "cf=0 vs ref | plain vs ref |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    const char *bases[] = {"sgd", "momentum", "adam"};
    for (int b = 0; b < 3; b++)
        for (int s = 0; s < nres; s++) {
            size_result *r = &results[s];
            double n = (double)r->n;
            kernel *step = find_step(r, bases[b], 1), *raw = find_step(r, bases[b], 0);
            kernel *read = find(r, K_PLAIN_SCAN, NULL), *plain = find_plain(r, bases[b]);
            if (!step || !raw || !read || !plain) continue;
            printf("| %s | %.0e | %.3f | %.3f | %.3f | %.3f | %.3f | ", bases[b], n, step->median_ns / n,
                   raw->median_ns / n, (step->median_ns - raw->median_ns) / n, read->median_ns / n,
                   plain->median_ns / n);
            /* A difference of medians: meaningful only while run-to-run noise is smaller. */
            if (r->n <= 100000) printf("%.2f | ", (raw->median_ns - plain->median_ns) / 1e3);
            else printf("- | ");
            printf("%.2f | %.2f | %.2f |\n", vs_ref(step, r), vs_ref(raw, r), vs_ref(plain, r));
        }
}

static void print_verdict(int threads, int nres) {
    printf("\n### Targets (%d thread%s)\n\n", threads, threads == 1 ? "" : "s");
    /* Fixed cost: the step time at n = 1e3 (or the smallest size measured). */
    int small = 0;
    for (int s = 1; s < nres; s++)
        if (results[s].n < results[small].n) small = s;
    size_result *r = &results[small];
    for (int c = 1; c >= 0; c--) {
        printf("Fixed cost per step at n = %lld, check_finite=%d (median us/step; target < 2 us):",
               (long long)r->n, c);
        double worst = 0;
        for (int i = 0; i < r->nk; i++)
            if (r->k[i].kind == K_STEP && r->k[i].check_finite == c) {
                printf(" %s %.2f;", r->k[i].name, r->k[i].median_ns / 1e3);
                if (r->k[i].median_ns > worst) worst = r->k[i].median_ns;
            }
        printf(" worst %.2f us: %s\n", worst / 1e3, worst < 2000 ? "MET" : "MISSED");
    }

    printf("\nBandwidth: adam, momentum, sgd at >= 0.90 of the reference at 1e7 and 5e7 elements "
           "(defined for 2 threads):\n\n");
    const char *names[] = {"adam", "momentum", "sgd"};
    for (int s = 0; s < nres; s++) {
        size_result *rs = &results[s];
        if (rs->n != 10000000 && rs->n != 50000000) continue;
        for (int i = 0; i < 3; i++) {
            kernel *step = find_step(rs, names[i], 1), *raw = find_step(rs, names[i], 0);
            if (!step || !raw) continue;
            printf("- %s n=%.0e: default step %.2f of reference: %s; check_finite=0 %.2f: %s; "
                   "the pre-scan takes %.0f%% of the default step", names[i], (double)rs->n,
                   vs_ref(step, rs), vs_ref(step, rs) >= 0.9 ? "MET" : "MISSED", vs_ref(raw, rs),
                   vs_ref(raw, rs) >= 0.9 ? "MET" : "MISSED",
                   100 * (step->median_ns - raw->median_ns) / step->median_ns);
            kernel *plain = find_plain(rs, names[i]);
            if (plain) printf("; the plain loop %.2f", vs_ref(plain, rs));
            printf("\n");
        }
    }
}

/* ---- --baseline: this library against another, in alternating runs -------------------------*/

typedef struct {
    descent_optimizer *opt;
    float *p, *g;
} stepper;

static void api_check(const descent_api *api, int32_t status, const char *call) {
    if (status != DESCENT_OK) {
        fprintf(stderr, "optimizer_bandwidth: %s (%s library): %s\n", call, api->origin, api->last_error());
        exit(1);
    }
}

/* Nanoseconds per step over `steps` steps. */
static double run_steps(const descent_api *api, stepper *s, int64_t n, int steps) {
    float *params[1] = {s->p};
    const float *grads[1] = {s->g};
    double t0 = now_ns();
    for (int i = 0; i < steps; i++) api_check(api, api->optimizer_step(s->opt, 1, params, grads, &n), "descent_optimizer_step");
    return (now_ns() - t0) / steps;
}

static void compare_with_baseline(void) {
    descent_api lib[2] = {descent_api_linked(), {0}};   /* [0] this library, [1] the baseline */
    if (!descent_api_load(baseline_path, &lib[1])) exit(1);
    const int pairs = baseline_pairs;
    double *ratios = malloc((size_t)pairs * sizeof *ratios), *times[2];
    for (int k = 0; k < 2; k++) times[k] = malloc((size_t)pairs * sizeof(double));
    if (!ratios || !times[0] || !times[1]) die("out of memory");
    printf("# Descent %s (linked) against the baseline %s (Descent %s): descent_optimizer_step\n\n",
           lib[0].version(), baseline_path, lib[1].version());
    printf("- per optimizer and size: %d pairs of runs of about %.2f s each, alternating A B / B A; "
           "ratio = linked time per step / baseline time per step, per pair\n", pairs, baseline_run_seconds);
    for (int t = 0; t < n_threads; t++) {
        for (int k = 0; k < 2; k++) api_check(&lib[k], lib[k].set_num_threads(thread_list[t]), "descent_set_num_threads");
        printf("\n## %d thread%s\n\n", thread_list[t], thread_list[t] == 1 ? "" : "s");
        printf("| n | optimizer | us/step linked | us/step baseline | median ratio | ratio range |\n");
        printf("|---:|---|---:|---:|---:|---|\n");
        for (int s = 0; s < n_sizes; s++)
            for (int o = 0; o < N_OPTIMIZERS; o++) {
                if (!optimizer_selected(OPTIMIZERS[o].name)) continue;
                const int64_t n = sizes[s];
                stepper st[2];
                for (int k = 0; k < 2; k++) {
                    api_check(&lib[k], lib[k].optimizer_create(OPTIMIZERS[o].name, NULL, &st[k].opt),
                              "descent_optimizer_create");
                    st[k].p = alloc_floats(n);
                    st[k].g = alloc_floats(n);
                    for (int64_t i = 0; i < n; i++) st[k].p[i] = 0.5f, st[k].g[i] = 1e-3f;
                    run_steps(&lib[k], &st[k], n, 2);   /* state created, pages touched */
                }
                /* Steps per run: about run_seconds on the baseline (both take the same steps). */
                int probe = 1;
                double per_step;
                while ((per_step = run_steps(&lib[1], &st[1], n, probe)) * probe < 0.02e9) {
                    run_steps(&lib[0], &st[0], n, probe);
                    probe *= 2;
                }
                run_steps(&lib[0], &st[0], n, probe);
                const int steps = (int)(baseline_run_seconds * 1e9 / per_step) + 1;
                for (int p = 0; p < pairs; p++) {
                    for (int j = 0; j < 2; j++) {
                        int k = (p + j) % 2;   /* A B, then B A: neither always runs first */
                        times[k][p] = run_steps(&lib[k], &st[k], n, steps);
                    }
                    ratios[p] = times[0][p] / times[1][p];
                }
                qsort(ratios, (size_t)pairs, sizeof *ratios, cmp_double);
                qsort(times[0], (size_t)pairs, sizeof(double), cmp_double);
                qsort(times[1], (size_t)pairs, sizeof(double), cmp_double);
                printf("| %.0e | %s | %.3f | %.3f | %.3f | %.3f-%.3f |\n", (double)n, OPTIMIZERS[o].name,
                       quantile_sorted(times[0], pairs, 0.5) / 1e3, quantile_sorted(times[1], pairs, 0.5) / 1e3,
                       quantile_sorted(ratios, pairs, 0.5), ratios[0], ratios[pairs - 1]);
                fflush(stdout);
                for (int k = 0; k < 2; k++) {
                    lib[k].optimizer_free(st[k].opt);
                    free(st[k].p);
                    free(st[k].g);
                }
            }
    }
    free(ratios); free(times[0]); free(times[1]);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    /* Before the first OpenMP call (libomp reads these once, when it initialises). */
    if (bind_threads && !getenv("OMP_PROC_BIND") && !getenv("OMP_PLACES") && !getenv("KMP_AFFINITY")) {
        setenv("OMP_PROC_BIND", "true", 1);
        setenv("OMP_PLACES", "cores", 1);
        bind_set_here = 1;
    }
    if (n_threads == 0) {
        thread_list[n_threads++] = descent_get_num_threads();
        if (thread_list[0] > 1) thread_list[n_threads++] = 1;
    }
    if (baseline_path) {
        compare_with_baseline();
        return 0;
    }
    /* The Adam constants the plain loop uses: the library's defaults, first-step corrections. */
    {
        descent_optimizer *probe = NULL;
        check(descent_optimizer_create("adam", NULL, &probe), "descent_optimizer_create");
        double b1, b2, eps, lr;
        check(descent_optimizer_get(probe, "beta1", &b1), "descent_optimizer_get");
        check(descent_optimizer_get(probe, "beta2", &b2), "descent_optimizer_get");
        check(descent_optimizer_get(probe, "eps", &eps), "descent_optimizer_get");
        check(descent_optimizer_get(probe, "lr", &lr), "descent_optimizer_get");
        descent_optimizer_free(probe);
        adam_omb1 = (float)(1.0 - b1); adam_omb2 = (float)(1.0 - b2); adam_eps = (float)eps;
        adam_step_size = (float)(lr * sqrt(1 - b2) / (1 - b1));
    }
    print_machine();
    for (int t = 0; t < n_threads; t++) {
        int threads = thread_list[t];
        check(descent_set_num_threads(threads), "descent_set_num_threads");
        if (descent_get_num_threads() != threads) die("descent_get_num_threads disagrees with the count set");
        printf("\n## %d thread%s\n\n", threads, threads == 1 ? "" : "s");
        print_placement(threads, "before");
        for (int s = 0; s < n_sizes; s++) {
            fprintf(stderr, "[%d thread%s] n = %.0e ...\n", threads, threads == 1 ? "" : "s",
                    (double)sizes[s]);
            measure_size(&results[s], sizes[s], threads);
        }
        print_placement(threads, "after");
        print_tables(n_sizes);
        print_verdict(threads, n_sizes);
        fflush(stdout);
    }
    check(descent_set_num_threads(0), "descent_set_num_threads");
    return 0;
}
