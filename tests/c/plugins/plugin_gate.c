/*
 * plugin_gate.c -- test fixture: an optimizer whose step waits at a gate, so a test can hold
 * a training step in progress for as long as it likes (test_net_in_use.c: what other threads
 * see while one is inside a call on a network).
 *
 *   gate   p -= lr*g, but first: say "entered", then wait while the gate is held (only the
 *          first of concurrent steps waits).
 *
 * The test reaches the gate through the plugin's own symbols (dlopen of the same file gives
 * the same copy the library loaded): gate_hold(), gate_release(), gate_entered().
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <time.h>

#include "descent_plugin.h"

static atomic_int held, entered, inside;

DESCENT_PLUGIN_EXPORT void gate_hold(void) {
    atomic_store(&entered, 0);
    atomic_store(&held, 1);
}
DESCENT_PLUGIN_EXPORT void gate_release(void) { atomic_store(&held, 0); }
DESCENT_PLUGIN_EXPORT int gate_entered(void) { return atomic_load(&entered); }

static int32_t gate_step(const descent_step_context *ctx, float *p, const float *g,
                         float *const *state, int64_t n) {
    (void)state;
    /* Only the first step in progress waits: were a second call let in (the library failing to
     * refuse it), it runs through and the test sees it succeed instead of hanging. */
    if (atomic_fetch_add(&inside, 1) == 0) {
        atomic_store(&entered, 1);
        while (atomic_load(&held)) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    atomic_fetch_sub(&inside, 1);
    const float lr = (float)ctx->hparams[0];
    for (int64_t i = 0; i < n; i++) p[i] -= lr * g[i];
    return DESCENT_PLUGIN_OK;
}

static const descent_hparam_desc hparams[] = {
    {sizeof(descent_hparam_desc), DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", 0.1, 0.0, 1e9},
};
static const descent_optimizer_desc gate = {
    sizeof(descent_optimizer_desc), DESCENT_OPTIMIZER_INFALLIBLE, "gate", "p -= lr*g, after waiting at a gate",
    1, 0, hparams, NULL, gate_step,
};
static const descent_optimizer_desc *const optimizers[] = {&gate};
static const descent_plugin plugin = {DESCENT_PLUGIN_ABI_VERSION, sizeof(descent_plugin), "gate", "1.0.0", 1, 0,
                                      optimizers};

DESCENT_PLUGIN_EXPORT const descent_plugin *descent_plugin_entry(const descent_host *host) {
    if (DESCENT_PLUGIN_ABI_MAJOR_OF(host->abi_version) != DESCENT_PLUGIN_ABI_MAJOR) return NULL;
    return &plugin;
}
