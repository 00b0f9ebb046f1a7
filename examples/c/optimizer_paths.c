/*
optimizer_paths.c -- every optimizer on the book's 2D test function.

"Deep Learning from Scratch", figure 6-8: minimise

    f(x, y) = x^2/20 + y^2          gradient (x/10, 2y), minimum at (0, 0)

from (-7, 2) for 30 steps. The book's settings are sgd lr 0.95, momentum lr 0.1, adagrad lr 1.5
and adam lr 0.3; nesterov, rmsprop and adamw run here too, with learning rates picked the same
way (large enough to get somewhere in 30 steps, small enough not to blow up). Each path is
printed as a table, then a summary of where every optimizer ended.

    optimizer_paths                    # the built-in optimizers
    optimizer_paths path/to/lion.so    # ... and every optimizer the plugin(s) register

This is the book's optimizer.update(params, grads) loop in C: the point (x, y) is one float
tensor of length 2, and the program computes the gradient itself each step.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descent.h"

#define STEPS 30
#define MAX_RUNS 32

static const float X0 = -7.0f, Y0 = 2.0f;

static double f(double x, double y) { return x * x / 20.0 + y * y; }

// ----------------------------------------------------------------------------
// which optimizers run, and with which hyperparameters

typedef struct run {
    char name[64];
    char hparams[128];
    float x, y;      // final point
    int ok;
} run;

// Built-ins: the book's four, then the rest.
static const struct { const char *name, *hparams; } BUILTIN_RUNS[] = {
    {"sgd", "lr=0.95"},
    {"momentum", "lr=0.1"},
    {"adagrad", "lr=1.5"},
    {"adam", "lr=0.3"},
    {"nesterov", "lr=0.1"},        // same as momentum; the look-ahead damps the oscillation
    {"rmsprop", "lr=0.1"},         // like adagrad but forgetting: steps stay near lr*g/|g|
    {"adamw", "lr=0.3"},           // adam's lr; the decoupled decay (0.01) is a small pull to 0
};

// Plugin optimizers we know a sensible setting for; others get "lr=0.1" when they have an lr,
// else their defaults.
static const struct { const char *name, *hparams; } PLUGIN_RUNS[] = {
    // Lion moves every coordinate by exactly lr per step (a sign update): to cover the 7 units
    // from x = -7 in 30 steps it needs lr of about 0.25.
    {"lion", "lr=0.25"},
};

// Fails loudly: the status name and the library's message.
static int check(int32_t status, const char *what) {
    if (status != DESCENT_OK) {
        fprintf(stderr, "optimizer_paths: %s failed: %s: %s\n", what, descent_status_name(status), descent_last_error());
        return 0;
    }
    return 1;
}

// The registered names as a malloc'ed "a,b,c" string.
static char *optimizer_names(void) {
    int64_t needed = 0;
    if (!check(descent_optimizer_names(NULL, 0, &needed), "descent_optimizer_names")) return NULL;
    char *names = malloc((size_t)needed);
    if (names == NULL) return NULL;
    if (!check(descent_optimizer_names(names, needed, &needed), "descent_optimizer_names")) {
        free(names);
        return NULL;
    }
    return names;
}

static int has_lr(const char *name) {
    int64_t needed = 0;
    if (descent_optimizer_describe(name, NULL, 0, &needed) != DESCENT_OK) return 0;
    char *json = malloc((size_t)needed);
    int found = json && descent_optimizer_describe(name, json, needed, &needed) == DESCENT_OK &&
                strstr(json, "{\"name\":\"lr\"") != NULL;
    free(json);
    return found;
}

// ----------------------------------------------------------------------------
// one path

static int run_path(run *r) {
    descent_optimizer *opt = NULL;
    char what[256];
    snprintf(what, sizeof what, "descent_optimizer_create(\"%s\", \"%s\")", r->name, r->hparams);
    if (!check(descent_optimizer_create(r->name, r->hparams, &opt), what)) return 0;

    float point[2] = {X0, Y0};   // params: one tensor holding x and y
    float grad[2];
    float *params[1] = {point};
    const float *grads[1] = {grad};
    const int64_t lengths[1] = {2};

    printf("\n%s (%s)\n", r->name, r->hparams[0] ? r->hparams : "defaults");
    printf("%5s %12s %12s %12s\n", "step", "x", "y", "f(x,y)");
    printf("%5d %12.6f %12.6f %12.6f\n", 0, point[0], point[1], f(point[0], point[1]));
    int ok = 1;
    for (int step = 1; step <= STEPS && ok; step++) {
        grad[0] = point[0] / 10.0f;   // df/dx = x/10
        grad[1] = 2.0f * point[1];    // df/dy = 2y
        ok = check(descent_optimizer_step(opt, 1, params, grads, lengths), "descent_optimizer_step");
        if (ok) printf("%5d %12.6f %12.6f %12.6f\n", step, point[0], point[1], f(point[0], point[1]));
    }
    descent_optimizer_free(opt);
    r->x = point[0];
    r->y = point[1];
    return ok;
}

// ----------------------------------------------------------------------------

int main(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: %s [plugin.so ...]\n"
               "Runs every built-in optimizer (and those of the given plugins) for %d steps on\n"
               "f(x,y) = x^2/20 + y^2 from (-7, 2) and prints the paths.\n", argv[0], STEPS);
        return 0;
    }
    printf("Descent %s: optimizer paths on f(x,y) = x^2/20 + y^2 from (%g, %g), %d steps\n", descent_version(),
           (double)X0, (double)Y0, STEPS);

    run runs[MAX_RUNS];
    int n = 0;
    for (size_t i = 0; i < sizeof BUILTIN_RUNS / sizeof BUILTIN_RUNS[0]; i++, n++) {
        snprintf(runs[n].name, sizeof runs[n].name, "%s", BUILTIN_RUNS[i].name);
        snprintf(runs[n].hparams, sizeof runs[n].hparams, "%s", BUILTIN_RUNS[i].hparams);
    }

    // Plugins: whatever names appear after loading them are theirs.
    if (argc > 1) {
        char *before = optimizer_names();
        if (before == NULL) return 1;
        for (int a = 1; a < argc; a++) {
            char what[512];
            snprintf(what, sizeof what, "descent_plugin_load(\"%s\")", argv[a]);
            if (!check(descent_plugin_load(argv[a]), what)) return 1;
        }
        char *after = optimizer_names();
        if (after == NULL) return 1;
        // the new names are the tail of the list: plugins come after what was there
        const char *tail = after + strlen(before);
        for (char *name = strtok(*tail == ',' ? (char *)tail + 1 : (char *)tail, ","); name && n < MAX_RUNS;
             name = strtok(NULL, ",")) {
            snprintf(runs[n].name, sizeof runs[n].name, "%s", name);
            runs[n].hparams[0] = '\0';
            if (has_lr(name)) snprintf(runs[n].hparams, sizeof runs[n].hparams, "lr=0.1");
            for (size_t k = 0; k < sizeof PLUGIN_RUNS / sizeof PLUGIN_RUNS[0]; k++)
                if (strcmp(name, PLUGIN_RUNS[k].name) == 0)
                    snprintf(runs[n].hparams, sizeof runs[n].hparams, "%s", PLUGIN_RUNS[k].hparams);
            n++;
        }
        free(before);
        free(after);
    }

    int failures = 0;
    for (int i = 0; i < n; i++) {
        runs[i].ok = run_path(&runs[i]);
        failures += !runs[i].ok;
    }

    printf("\nSummary after %d steps (minimum at (0, 0), f = 0; start f = %.4f)\n", STEPS, f(X0, Y0));
    printf("%-12s %-10s %12s %12s %12s %12s\n", "optimizer", "settings", "x", "y", "f(x,y)", "distance");
    for (int i = 0; i < n; i++) {
        if (!runs[i].ok) {
            printf("%-12s %-10s %12s\n", runs[i].name, runs[i].hparams, "failed");
            continue;
        }
        double x = runs[i].x, y = runs[i].y;
        printf("%-12s %-10s %12.6f %12.6f %12.6f %12.6f\n", runs[i].name, runs[i].hparams[0] ? runs[i].hparams : "defaults",
               x, y, f(x, y), sqrt(x * x + y * y));
    }
    return failures == 0 ? 0 : 1;
}
