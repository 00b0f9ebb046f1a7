/*
 * test_paths.c -- the 2D check of issue 2 point 8 ("Deep Learning from Scratch", figure 6-8).
 *
 * f(x, y) = x^2/20 + y^2, gradient (x/10, 2y), from (-7, 2), 30 steps with the book's settings:
 * sgd lr 0.95, momentum lr 0.1, adagrad lr 1.5, adam lr 0.3 (every other hyperparameter at its
 * default). The point is one tensor of 2 floats, as the book's params = {'x', 'y'} would be.
 *
 * Every step of the library's path is compared with a reference computed here in double
 * precision, straight from the book's update rules (written out below, independently of the
 * library's kernels), and the first steps also with values derived by hand.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "descent.h"

enum { STEPS = 30 };
static const double X0 = -7.0, Y0 = 2.0;

static double f(double x, double y) { return x * x / 20.0 + y * y; }

/* ---- the reference: the book's update rules in double precision -----------------------------*/

typedef struct ref_state {
    double p[2], a[2], b[2];   /* point, first state buffer, second state buffer */
    int t;
} ref_state;

static void ref_step(const char *name, double lr, ref_state *s) {
    double g[2] = {s->p[0] / 10.0, 2.0 * s->p[1]};
    s->t++;
    for (int i = 0; i < 2; i++) {
        if (strcmp(name, "sgd") == 0) {
            /* p -= lr*g */
            s->p[i] -= lr * g[i];
        } else if (strcmp(name, "momentum") == 0) {
            /* v = momentum*v - lr*g; p += v   (momentum 0.9) */
            s->a[i] = 0.9 * s->a[i] - lr * g[i];
            s->p[i] += s->a[i];
        } else if (strcmp(name, "adagrad") == 0) {
            /* h += g^2; p -= lr*g/(sqrt(h)+eps)   (eps 1e-7) */
            s->a[i] += g[i] * g[i];
            s->p[i] -= lr * g[i] / (sqrt(s->a[i]) + 1e-7);
        } else if (strcmp(name, "adam") == 0) {
            /* m += (1-beta1)*(g-m); v += (1-beta2)*(g^2-v);
             * lr_t = lr*sqrt(1-beta2^t)/(1-beta1^t); p -= lr_t*m/(sqrt(v)+eps)
             * (beta1 0.9, beta2 0.999, eps 1e-7: the book's form) */
            s->a[i] += (1 - 0.9) * (g[i] - s->a[i]);
            s->b[i] += (1 - 0.999) * (g[i] * g[i] - s->b[i]);
            double lr_t = lr * sqrt(1 - pow(0.999, s->t)) / (1 - pow(0.9, s->t));
            s->p[i] -= lr_t * s->a[i] / (sqrt(s->b[i]) + 1e-7);
        }
    }
}

/*
 * Tolerance. The library works in float (unit roundoff u = 6e-8) and, like any user, we feed it
 * gradients computed in float from its own float point, while the reference is double. One
 * rounding of a coordinate (|x| <= 7) is at most 7u = 4e-7. Each step rounds a handful of
 * operations, and all four paths are contracting or damped (sgd: x *= 0.905, y *= -0.9 per
 * step; momentum: a damped oscillator, |eigenvalues| <= 0.95; adagrad and adam: steps bounded
 * by lr and shrinking), so old errors are not amplified: a correct float implementation stays
 * within ~1e-6 of the double path over 30 steps (measured: 2e-7 sgd, 1e-6 momentum, 1e-7
 * adagrad, 5e-7 adam). 1e-5 (relative above 1) leaves a margin of 10 over that, and is still
 * far below what a wrong formula, default or step count gives (>= 1e-3 per step here). It also
 * catches float-precision slips that a loose check would hide: computing adam's 1 - beta2 as
 * 1.0f - 0.999f (off by 1.3e-5 relative) moves the adam path by 3e-5.
 */
static const double TOL = 1e-5;

typedef struct path_case {
    const char *name;
    double lr;
} path_case;

static void run_path(const path_case *c) {
    char hparams[32];
    snprintf(hparams, sizeof hparams, "lr=%g", c->lr);
    descent_optimizer *opt = NULL;
    if (!CHECK_STATUS(descent_optimizer_create(c->name, hparams, &opt), DESCENT_OK,
                      sfmt("create %s \"%s\"", c->name, hparams)))
        return;
    float point[2] = {(float)X0, (float)Y0};
    float grad[2];
    float *params[1] = {point};
    const float *grads[1] = {grad};
    const int64_t lengths[1] = {2};
    ref_state ref = {{X0, Y0}, {0, 0}, {0, 0}, 0};

    printf("     %-4s %12s %12s   %12s %12s\n", "t", "x", "y", "ref x", "ref y");
    double worst = 0;
    int steps_ok = 1, all_within = 1;
    for (int t = 1; t <= STEPS; t++) {
        grad[0] = point[0] / 10.0f;
        grad[1] = 2.0f * point[1];
        steps_ok &= descent_optimizer_step(opt, 1, params, grads, lengths) == DESCENT_OK;
        ref_step(c->name, c->lr, &ref);
        for (int i = 0; i < 2; i++) {
            double err = fabs(point[i] - ref.p[i]);
            double allowed = TOL * fmax(1.0, fabs(ref.p[i]));
            if (err > allowed) {
                all_within = 0;
                printf("     t=%d %s differs: %.9g vs %.9g\n", t, i ? "y" : "x", point[i], ref.p[i]);
            }
            worst = fmax(worst, err / fmax(1.0, fabs(ref.p[i])));
        }
        if (t <= 3 || t % 10 == 0)
            printf("     %-4d %12.7f %12.7f   %12.7f %12.7f\n", t, point[0], point[1], ref.p[0], ref.p[1]);
    }
    CHECK(steps_ok, "%s: 30 steps succeed", c->name);
    CHECK(all_within, "%s lr %g: all 30 steps within %.0e of the double reference (worst %.2g)", c->name, c->lr, TOL,
          worst);
    CHECK(f(point[0], point[1]) < f(X0, Y0) / 10.0, "%s: f fell from %.3f to %.5f", c->name, f(X0, Y0),
          f(point[0], point[1]));
    descent_optimizer_free(opt);
}

/* Runs `steps` steps and leaves the point in out[]. */
static int first_steps(const char *name, double lr, int steps, double out[2]) {
    char hparams[32];
    snprintf(hparams, sizeof hparams, "lr=%g", lr);
    descent_optimizer *opt = NULL;
    if (descent_optimizer_create(name, hparams, &opt) != DESCENT_OK) return 0;
    float point[2] = {(float)X0, (float)Y0}, grad[2];
    float *params[1] = {point};
    const float *grads[1] = {grad};
    const int64_t lengths[1] = {2};
    int ok = 1;
    for (int t = 0; t < steps; t++) {
        grad[0] = point[0] / 10.0f;
        grad[1] = 2.0f * point[1];
        ok &= descent_optimizer_step(opt, 1, params, grads, lengths) == DESCENT_OK;
    }
    out[0] = point[0];
    out[1] = point[1];
    descent_optimizer_free(opt);
    return ok;
}

/* The first one or two steps of each path, derived by hand from the formulas. */
static void test_by_hand(void) {
    printf("\n-- the first steps, by hand (to 1e-6)\n");
    double p[2];

    /* sgd lr 0.95: g0 = (-0.7, 4)
     *   step 1: x = -7 - 0.95*(-0.7) = -6.335,  y = 2 - 0.95*4 = -1.8
     *   step 2: g = (-0.6335, -3.6): x = -6.335 + 0.601825 = -5.733175, y = -1.8 + 3.42 = 1.62 */
    if (first_steps("sgd", 0.95, 1, p)) {
        CHECK_NEAR(p[0], -6.335, 1e-6, "sgd step 1: x = -7 - 0.95*(-0.7)");
        CHECK_NEAR(p[1], -1.8, 1e-6, "sgd step 1: y = 2 - 0.95*4");
    }
    if (first_steps("sgd", 0.95, 2, p)) {
        CHECK_NEAR(p[0], -5.733175, 1e-6, "sgd step 2: x = -6.335 - 0.95*(-0.6335)");
        CHECK_NEAR(p[1], 1.62, 1e-6, "sgd step 2: y = -1.8 - 0.95*(-3.6)");
    }

    /* momentum lr 0.1, momentum 0.9:
     *   step 1: v = -0.1*(-0.7, 4) = (0.07, -0.4);  p = (-6.93, 1.6)
     *   step 2: g = (-0.693, 3.2); v = 0.9*(0.07, -0.4) - 0.1*g = (0.1323, -0.68);  p = (-6.7977, 0.92) */
    if (first_steps("momentum", 0.1, 1, p)) {
        CHECK_NEAR(p[0], -6.93, 1e-6, "momentum step 1: x = -7 + 0.07");
        CHECK_NEAR(p[1], 1.6, 1e-6, "momentum step 1: y = 2 - 0.4");
    }
    if (first_steps("momentum", 0.1, 2, p)) {
        CHECK_NEAR(p[0], -6.7977, 1e-6, "momentum step 2: x = -6.93 + 0.1323");
        CHECK_NEAR(p[1], 0.92, 1e-6, "momentum step 2: y = 1.6 - 0.68");
    }

    /* adagrad lr 1.5, eps 1e-7:
     *   step 1: h = (0.49, 16); x = -7 + 1.5*0.7/(0.7 + 1e-7) = -5.50000021..., y = 2 - 1.5*4/(4 + 1e-7) = 0.5000000375
     *   step 2: g = (-0.55, 1.0) (to 1e-7); h = (0.7925, 17);
     *           x = -5.5 + 1.5*0.55/sqrt(0.7925) = -4.5732...,  y = 0.5 - 1.5/sqrt(17) = 0.1361965... */
    if (first_steps("adagrad", 1.5, 1, p)) {
        CHECK_NEAR(p[0], -7.0 + 1.5 * 0.7 / (0.7 + 1e-7), 1e-6, "adagrad step 1: x = -7 + 1.5*0.7/(0.7+1e-7)");
        CHECK_NEAR(p[1], 2.0 - 1.5 * 4.0 / (4.0 + 1e-7), 1e-6, "adagrad step 1: y = 2 - 1.5*4/(4+1e-7)");
    }
    if (first_steps("adagrad", 1.5, 2, p)) {
        double x1 = -7.0 + 1.5 * 0.7 / (0.7 + 1e-7), y1 = 2.0 - 1.5 * 4.0 / (4.0 + 1e-7);
        double gx = x1 / 10, gy = 2 * y1;
        CHECK_NEAR(p[0], x1 - 1.5 * gx / (sqrt(0.49 + gx * gx) + 1e-7), 1e-6,
                   "adagrad step 2: x = x1 - 1.5*gx/sqrt(0.49 + gx^2) = -4.57327");
        CHECK_NEAR(p[1], y1 - 1.5 * gy / (sqrt(16 + gy * gy) + 1e-7), 1e-6,
                   "adagrad step 2: y = y1 - 1.5*gy/sqrt(16 + gy^2) = 0.136197");
    }

    /* adam lr 0.3 (beta1 0.9, beta2 0.999, eps 1e-7), step 1: m = 0.1*g, v = 0.001*g^2,
     *   lr_t = 0.3*sqrt(0.001)/0.1 = 0.0948683, step = lr_t*0.1*g/(sqrt(0.001)*|g| + 1e-7)
     *   which is 0.3*sign(g) up to eps: x = -6.7000014, y = 1.7000000 */
    if (first_steps("adam", 0.3, 1, p)) {
        double lr_t = 0.3 * sqrt(0.001) / 0.1;
        CHECK_NEAR(p[0], -7.0 + lr_t * 0.1 * 0.7 / (sqrt(0.001) * 0.7 + 1e-7), 1e-6, "adam step 1: x = -7 + ~0.3");
        CHECK_NEAR(p[1], 2.0 - lr_t * 0.1 * 4.0 / (sqrt(0.001) * 4.0 + 1e-7), 1e-6, "adam step 1: y = 2 - ~0.3");
        CHECK_NEAR(p[0], -6.7, 2e-6, "adam step 1: x is -6.7 to within eps's effect");
        CHECK_NEAR(p[1], 1.7, 1e-6, "adam step 1: y is 1.7");
    }
    /* adam step 2: g = (-0.67, 3.4); m = 0.9*0.1*g1 + 0.1*g2; v = 0.999*0.001*g1^2 + 0.001*g2^2;
     *   lr_t = 0.3*sqrt(1-0.999^2)/(1-0.81) */
    if (first_steps("adam", 0.3, 2, p)) {
        double x1 = -7.0 + 0.3 * sqrt(0.001) / 0.1 * 0.1 * 0.7 / (sqrt(0.001) * 0.7 + 1e-7);
        double y1 = 2.0 - 0.3 * sqrt(0.001) / 0.1 * 0.1 * 4.0 / (sqrt(0.001) * 4.0 + 1e-7);
        double g1[2] = {-0.7, 4.0}, g2[2] = {x1 / 10, 2 * y1}, q[2] = {x1, y1};
        double lr_t = 0.3 * sqrt(1 - 0.999 * 0.999) / (1 - 0.81);
        for (int i = 0; i < 2; i++) {
            double m = 0.09 * g1[i] + 0.1 * g2[i];
            double v = 0.000999 * g1[i] * g1[i] + 0.001 * g2[i] * g2[i];
            CHECK_NEAR(p[i], q[i] - lr_t * m / (sqrt(v) + 1e-7), 1e-6, i ? "adam step 2: y" : "adam step 2: x");
        }
    }
}

int main(void) {
    printf("test_paths: f(x,y) = x^2/20 + y^2 from (-7, 2), 30 steps (book figure 6-8)\n");
    static const path_case cases[] = {{"sgd", 0.95}, {"momentum", 0.1}, {"adagrad", 1.5}, {"adam", 0.3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        printf("\n-- %s lr %g\n", cases[i].name, cases[i].lr);
        run_path(&cases[i]);
    }
    test_by_hand();
    return check_summary();
}
