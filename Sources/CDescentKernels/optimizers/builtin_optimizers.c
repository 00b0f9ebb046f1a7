/*
 * builtin_optimizers.c -- the seven built-in optimizers as one plugin, which the host
 * registers at start-up exactly like a loaded one. Each optimizer is in the file named after
 * it (optimizers/sgd.c, momentum.c, nesterov.c, adagrad.c, rmsprop.c, adam.c with adamw).
 */
#include "builtin_optimizer.h"

static const descent_optimizer_desc *const builtin_optimizers[] = {
    &dk_sgd, &dk_momentum, &dk_nesterov, &dk_adagrad, &dk_rmsprop, &dk_adam, &dk_adamw,
};

/* The built-in optimizers ship with the library and carry its version, which Package.swift defines
 * from Sources/Descent/Version.swift. "unknown" only where this file is compiled outside SwiftPM. */
#ifndef DESCENT_VERSION
#define DESCENT_VERSION "unknown"
#endif

static const descent_plugin builtin_plugin = {
    DESCENT_PLUGIN_ABI_VERSION, sizeof(descent_plugin), "built-in", DESCENT_VERSION,
    COUNT(builtin_optimizers), 0, builtin_optimizers,
};

const descent_plugin *dk_builtin_plugin(void) { return &builtin_plugin; }
