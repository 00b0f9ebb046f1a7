/*
 * test_formulas.c -- every built-in optimizer against the book's update rules.
 *
 * Each case runs several steps on two tensors, with and without weight_decay, and compares every
 * parameter after every step with a double-precision reference written here from the update
 * rules below (not from the library's kernels):
 *
 *   g' = g + weight_decay*p   (host L2) for every optimizer but adamw
 *   sgd        p -= lr*g
 *   momentum   v = momentum*v - lr*g; p += v
 *   nesterov   p += momentum^2*v - (1+momentum)*lr*g; v = momentum*v - lr*g   (old v first)
 *   adagrad    h += g^2; p -= lr*g/(sqrt(h)+eps)
 *   rmsprop    h = decay*h + (1-decay)*g^2; p -= lr*g/(sqrt(h)+eps)
 *   adam       m += (1-beta1)*(g-m); v += (1-beta2)*(g^2-v);
 *              eps_hat=1 (book):    p -= lr*sqrt(1-beta2^t)/(1-beta1^t) * m/(sqrt(v)+eps)
 *              eps_hat=0 (PyTorch): p -= lr*mhat/(sqrt(vhat)+eps), mhat = m/(1-beta1^t), vhat = v/(1-beta2^t)
 *   adamw      p -= lr*weight_decay*p (decoupled); then m, v and the PyTorch form of adam
 *
 * Tolerance: relative 1e-5, i.e. |lib - ref| <= 1e-5 * max(|ref|, 0.1). The library rounds to
 * float (u = 6e-8) a handful of times per element and step, and the gradients it gets are the
 * same floats the reference gets, so it stays within about 30u = 2e-6 of the parameters' scale
 * (~1; the floor 0.1 keeps elements that pass near zero from turning rounding into a large
 * relative error): measured <= 2.2e-6 over all cases. A wrong formula, default or bias
 * correction is off by far more, at least 1e-3 relative here; a coefficient rounded badly
 * (1 - beta2 computed as 1.0f - 0.999f, 1.3e-5 relative) shows as 6e-5 in the lr=0.5 cases.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "descent.h"

static const double REL_TOL = 1e-5, FLOOR = 0.1;

/* One case: the library's hparams string and the same values spelled out for the reference.
 * Fields the optimizer does not have are ignored. */
typedef struct config {
    const char *name;
    const char *hparams;
    double lr, momentum, decay, eps, beta1, beta2, eps_hat, weight_decay;
} config;

/* ---- the reference ----------------------------------------------------------------------*/

typedef struct ref_tensor {
    int64_t n;
    double *p, *s1, *s2;   /* parameters and up to two state buffers, zero at start */
} ref_tensor;

static void ref_step(const config *c, ref_tensor *x, const float *grad, int t) {
    const char *k = c->name;
    for (int64_t i = 0; i < x->n; i++) {
        double p = x->p[i], g = grad[i];
        if (strcmp(k, "adamw") != 0) g += c->weight_decay * p;   /* host L2 */
        if (strcmp(k, "sgd") == 0) {
            p -= c->lr * g;
        } else if (strcmp(k, "momentum") == 0) {
            x->s1[i] = c->momentum * x->s1[i] - c->lr * g;
            p += x->s1[i];
        } else if (strcmp(k, "nesterov") == 0) {
            double v = x->s1[i];
            p += c->momentum * c->momentum * v - (1 + c->momentum) * c->lr * g;
            x->s1[i] = c->momentum * v - c->lr * g;
        } else if (strcmp(k, "adagrad") == 0) {
            x->s1[i] += g * g;
            p -= c->lr * g / (sqrt(x->s1[i]) + c->eps);
        } else if (strcmp(k, "rmsprop") == 0) {
            x->s1[i] = c->decay * x->s1[i] + (1 - c->decay) * g * g;
            p -= c->lr * g / (sqrt(x->s1[i]) + c->eps);
        } else {   /* adam, adamw */
            int adamw = strcmp(k, "adamw") == 0;
            if (adamw) p -= c->lr * c->weight_decay * p;
            x->s1[i] += (1 - c->beta1) * (g - x->s1[i]);
            x->s2[i] += (1 - c->beta2) * (g * g - x->s2[i]);
            double bc1 = 1 - pow(c->beta1, t), bc2 = 1 - pow(c->beta2, t);
            if (!adamw && c->eps_hat == 1) {
                double lr_t = c->lr * sqrt(bc2) / bc1;
                p -= lr_t * x->s1[i] / (sqrt(x->s2[i]) + c->eps);
            } else {
                double mhat = x->s1[i] / bc1, vhat = x->s2[i] / bc2;
                p -= c->lr * mhat / (sqrt(vhat) + c->eps);
            }
        }
        x->p[i] = p;
    }
}

/* ---- one case -----------------------------------------------------------------------------*/

/* Deterministic gradients with both signs, different per tensor, element and step. */
static float gradient(int tensor, int64_t i, int t) {
    double phase = 0.37 * (double)i + 1.1 * t + 2.3 * tensor;
    return (float)(0.8 * sin(phase) + 0.05 * cos(3.0 * phase));
}

static float initial(int tensor, int64_t i) { return (float)(1.2 * cos(0.61 * (double)i + tensor) - 0.1 * tensor); }

/* Runs `steps` steps on tensors of the given lengths; `lr_at` > 0 halves lr (library and
 * reference) before that step, to check that set() keeps state. Returns the worst relative error. */
static double run_case(const config *c, const int64_t *lengths, int count, int steps, int lr_at) {
    descent_optimizer *opt = NULL;
    if (descent_optimizer_create(c->name, c->hparams, &opt) != DESCENT_OK) {
        CHECK(0, "create %s \"%s\": %s", c->name, c->hparams, descent_last_error());
        return INFINITY;
    }
    float *params[4], *grads_buf[4];
    const float *grads[4];
    ref_tensor ref[4];
    for (int k = 0; k < count; k++) {
        params[k] = malloc((size_t)lengths[k] * sizeof(float));
        grads_buf[k] = malloc((size_t)lengths[k] * sizeof(float));
        grads[k] = grads_buf[k];
        ref[k].n = lengths[k];
        ref[k].p = malloc((size_t)lengths[k] * sizeof(double));
        ref[k].s1 = calloc((size_t)lengths[k], sizeof(double));
        ref[k].s2 = calloc((size_t)lengths[k], sizeof(double));
        for (int64_t i = 0; i < lengths[k]; i++) ref[k].p[i] = params[k][i] = initial(k, i);
    }
    config cc = *c;
    double worst = 0;
    int ok = 1;
    for (int t = 1; t <= steps; t++) {
        if (t == lr_at) {
            cc.lr = c->lr / 2;
            ok &= descent_optimizer_set(opt, "lr", cc.lr) == DESCENT_OK;
        }
        for (int k = 0; k < count; k++)
            for (int64_t i = 0; i < lengths[k]; i++) grads_buf[k][i] = gradient(k, i, t);
        ok &= descent_optimizer_step(opt, count, params, grads, lengths) == DESCENT_OK;
        for (int k = 0; k < count; k++) {
            ref_step(&cc, &ref[k], grads_buf[k], t);
            for (int64_t i = 0; i < lengths[k]; i++) {
                double err = fabs(params[k][i] - ref[k].p[i]) / fmax(fabs(ref[k].p[i]), FLOOR);
                if (!(err <= worst)) worst = err;   /* NaN-safe: NaN becomes the worst */
            }
        }
        if (lengths[0] <= 8 && count == 2 && t <= 2)
            printf("     t=%d  p0 = [%.7f %.7f ...]  ref [%.7f %.7f ...]\n", t, params[0][0], params[0][1], ref[0].p[0],
                   ref[0].p[1]);
    }
    if (!ok) CHECK(0, "%s: every step and set succeeded: %s", c->name, descent_last_error());
    CHECK(get_value(opt, "step") == steps, "%s: step count is %d", c->name, steps);
    for (int k = 0; k < count; k++) {
        free(params[k]);
        free(grads_buf[k]);
        free(ref[k].p);
        free(ref[k].s1);
        free(ref[k].s2);
    }
    descent_optimizer_free(opt);
    return worst;
}

int main(void) {
    printf("test_formulas: built-in optimizers against the book's formulas (double reference)\n");
    /* the documented defaults are written out where a case relies on them */
    static const config cases[] = {
        /* name        hparams                                         lr    mom  decay eps   b1   b2    ehat wd */
        {"sgd", "lr=0.1", 0.1, 0, 0, 0, 0, 0, 0, 0},
        {"sgd", "lr=0.1,weight_decay=0.05", 0.1, 0, 0, 0, 0, 0, 0, 0.05},
        {"momentum", "lr=0.05", 0.05, 0.9, 0, 0, 0, 0, 0, 0},
        {"momentum", "lr=0.05,momentum=0.5,weight_decay=0.1", 0.05, 0.5, 0, 0, 0, 0, 0, 0.1},
        {"nesterov", "lr=0.05", 0.05, 0.9, 0, 0, 0, 0, 0, 0},
        {"nesterov", "lr=0.05,momentum=0.8,weight_decay=0.02", 0.05, 0.8, 0, 0, 0, 0, 0, 0.02},
        {"adagrad", "lr=0.1", 0.1, 0, 0, 1e-7, 0, 0, 0, 0},
        {"adagrad", "lr=0.1,eps=1e-3,weight_decay=0.1", 0.1, 0, 0, 1e-3, 0, 0, 0, 0.1},
        {"rmsprop", "lr=0.01", 0.01, 0, 0.99, 1e-7, 0, 0, 0, 0},
        {"rmsprop", "lr=0.02,decay=0.9,weight_decay=0.05", 0.02, 0, 0.9, 1e-7, 0, 0, 0, 0.05},
        {"adam", "lr=0.05", 0.05, 0, 0, 1e-7, 0.9, 0.999, 1, 0},
        {"adam", "lr=0.05,eps_hat=0", 0.05, 0, 0, 1e-7, 0.9, 0.999, 0, 0},
        {"adam", "lr=0.05,eps_hat=1,weight_decay=0.1", 0.05, 0, 0, 1e-7, 0.9, 0.999, 1, 0.1},
        {"adam", "lr=0.05,eps_hat=0,eps=1e-8,beta1=0.8,beta2=0.99,weight_decay=0.01", 0.05, 0, 0, 1e-8, 0.8, 0.99, 0, 0.01},
        {"adam", "lr=0.05,eps=0.1", 0.05, 0, 0, 0.1, 0.9, 0.999, 1, 0},
        {"adam", "lr=0.05,eps=0.1,eps_hat=0", 0.05, 0, 0, 0.1, 0.9, 0.999, 0, 0},
        /* a large lr: the updates dominate the parameters, so a small relative error in a
         * coefficient (e.g. 1 - beta2 formed in float) shows in p */
        {"adam", "lr=0.5", 0.5, 0, 0, 1e-7, 0.9, 0.999, 1, 0},
        {"adamw", "lr=0.05", 0.05, 0, 0, 1e-8, 0.9, 0.999, 0, 0.01},
        {"adamw", "lr=0.5,weight_decay=0.1", 0.5, 0, 0, 1e-8, 0.9, 0.999, 0, 0.1},
        {"adamw", "lr=0.05,weight_decay=0", 0.05, 0, 0, 1e-8, 0.9, 0.999, 0, 0},
        {"adamw", "lr=0.05,weight_decay=0.5,beta1=0.5,beta2=0.9", 0.05, 0, 0, 1e-8, 0.5, 0.9, 0, 0.5},
    };
    const int64_t small[2] = {5, 3};
    /* large: several 4096-element chunks, the L2 scratch path, and the parallel path (> 32768) */
    const int64_t large[2] = {5000, 40000};
    descent_set_num_threads(2);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const config *c = &cases[i];
        printf("\n-- %s \"%s\"\n", c->name, c->hparams);
        double worst = run_case(c, small, 2, 6, 0);
        CHECK(worst <= REL_TOL, "%s \"%s\": 6 steps on tensors of 5 and 3 match the reference (worst rel. error %.2g)",
              c->name, c->hparams, worst);
        worst = run_case(c, small, 2, 6, 4);
        CHECK(worst <= REL_TOL, "%s \"%s\": with lr halved by set() before step 4 (worst %.2g)", c->name, c->hparams,
              worst);
        worst = run_case(c, large, 2, 3, 0);
        CHECK(worst <= REL_TOL, "%s \"%s\": 3 steps on tensors of 5000 and 40000 (worst %.2g)", c->name, c->hparams,
              worst);
    }
    descent_set_num_threads(0);
    return check_summary();
}
