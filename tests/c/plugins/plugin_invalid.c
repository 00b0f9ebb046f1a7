/*
 * plugin_invalid.c -- test fixture: a plugin whose descriptor is wrong in one of many ways,
 * chosen by the environment variable DESCENT_TEST_INVALID when the host calls the entry point.
 * Each must be refused with DESCENT_ERR_PLUGIN and a message saying what is wrong, and register
 * nothing. (A refused library is closed again, so the next descent_plugin_load of this file
 * calls the entry point afresh and can pick another case.)
 *
 *   (unset) / null_step   optimizer 'nostep' has no step function
 *   bad_default           default of 'lr' (-1) outside its range (0, inf)
 *   bad_name              optimizer name "Bad-Name"
 *   no_name               optimizer name NULL
 *   too_many_states       state_count 9 (at most DESCENT_PLUGIN_MAX_STATE = 8)
 *   too_many_hparams      hparam_count 33 (at most DESCENT_PLUGIN_MAX_HPARAMS = 32)
 *   empty_range           'lr' with min 1 > max 0
 *   dup_hparam            'lr' twice
 *   bad_hparam_name       hyperparameter "2fast"
 *   check_finite          'lr' and 'check_finite', a name the host reserves for its own
 *                         hyperparameter (valid in itself: boolean, default 1)
 *   no_table              hparam_count 2 with hparams NULL
 *   small_hparam          hparams[0].struct_size 8
 *   small_desc            optimizer struct_size 8
 *   small_plugin          descent_plugin struct_size 4
 *   null_desc             optimizers[0] NULL
 *   zero_optimizers       optimizer_count 0
 *   dup_optimizer         two optimizers named 'twice'
 *   partial               'partial_ok' (valid) then 'nostep' (invalid): neither is registered
 *   refuse                the entry point returns NULL
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "descent_plugin.h"

#define HSIZE sizeof(descent_hparam_desc)
#define DSIZE sizeof(descent_optimizer_desc)

static int32_t step(const descent_step_context *ctx, float *p, const float *g, float *const *state,
                    int64_t n) {
    (void)state;
    for (int64_t i = 0; i < n; i++) p[i] -= (float)ctx->hparams[0] * g[i];
    return DESCENT_PLUGIN_OK;
}

static const descent_hparam_desc good_lr[] = {
    {HSIZE, DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", 0.01, 0.0, HUGE_VAL},
};
static const descent_hparam_desc bad_default[] = {
    {HSIZE, DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", -1.0, 0.0, HUGE_VAL},
};
static const descent_hparam_desc empty_range[] = {
    {HSIZE, 0, "lr", "learning rate", 0.5, 1.0, 0.0},
};
static const descent_hparam_desc dup_hparam[] = {
    {HSIZE, DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", 0.01, 0.0, HUGE_VAL},
    {HSIZE, DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "again", 0.01, 0.0, HUGE_VAL},
};
static const descent_hparam_desc bad_hparam_name[] = {
    {HSIZE, 0, "2fast", "a name that starts with a digit", 0.0, 0.0, 1.0},
};
static const descent_hparam_desc small_hparam[] = {
    {8, DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", 0.01, 0.0, HUGE_VAL},
};
static const descent_hparam_desc declares_check_finite[] = {
    {HSIZE, DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", 0.01, 0.0, HUGE_VAL},
    {HSIZE, DESCENT_HPARAM_BOOLEAN, "check_finite", "the plugin's own idea of it", 1.0, 0.0, 1.0},
};
/* 33 entries; only the count matters, the host must refuse before reading them. */
static descent_hparam_desc many_hparams[33];

/* One descriptor per case; only the field under test is wrong. */
static const descent_optimizer_desc d_null_step = {DSIZE, 0, "nostep", "", 1, 0, good_lr, NULL, NULL};
static const descent_optimizer_desc d_bad_default = {DSIZE, 0, "baddefault", "", 1, 0, bad_default, NULL, step};
static const descent_optimizer_desc d_bad_name = {DSIZE, 0, "Bad-Name", "", 1, 0, good_lr, NULL, step};
static const descent_optimizer_desc d_no_name = {DSIZE, 0, NULL, "", 1, 0, good_lr, NULL, step};
static const descent_optimizer_desc d_many_states = {DSIZE, 0, "manystates", "", 1, 9, good_lr, NULL, step};
static const descent_optimizer_desc d_many_hparams = {DSIZE, 0, "manyhparams", "", 33, 0, many_hparams, NULL, step};
static const descent_optimizer_desc d_empty_range = {DSIZE, 0, "emptyrange", "", 1, 0, empty_range, NULL, step};
static const descent_optimizer_desc d_dup_hparam = {DSIZE, 0, "duphparam", "", 2, 0, dup_hparam, NULL, step};
static const descent_optimizer_desc d_bad_hparam_name = {DSIZE, 0, "badhparam", "", 1, 0, bad_hparam_name, NULL, step};
static const descent_optimizer_desc d_check_finite = {DSIZE, 0, "checkfinite", "", 2, 0, declares_check_finite,
                                                     NULL, step};
static const descent_optimizer_desc d_no_table = {DSIZE, 0, "notable", "", 2, 0, NULL, NULL, step};
static const descent_optimizer_desc d_small_hparam = {DSIZE, 0, "smallhparam", "", 1, 0, small_hparam, NULL, step};
static const descent_optimizer_desc d_small_desc = {8, 0, "smalldesc", "", 1, 0, good_lr, NULL, step};
static const descent_optimizer_desc d_twice = {DSIZE, 0, "twice", "", 1, 0, good_lr, NULL, step};
static const descent_optimizer_desc d_partial_ok = {DSIZE, 0, "partial_ok", "", 1, 0, good_lr, NULL, step};

static const descent_optimizer_desc *list_one[1];
static const descent_optimizer_desc *list_two[2];

static descent_plugin plugin = {DESCENT_PLUGIN_ABI_VERSION, sizeof(descent_plugin), "invalid", "1.0.0", 1, 0, NULL};

DESCENT_PLUGIN_EXPORT const descent_plugin *descent_plugin_entry(const descent_host *host) {
    (void)host;
    const char *which = getenv("DESCENT_TEST_INVALID");
    if (!which) which = "null_step";

    /* Start from a valid-looking one-optimizer plugin each time. */
    plugin.struct_size = sizeof(descent_plugin);
    plugin.optimizer_count = 1;
    plugin.optimizers = list_one;
    list_one[0] = &d_null_step;

    if (strcmp(which, "refuse") == 0) return NULL;
    else if (strcmp(which, "bad_default") == 0) list_one[0] = &d_bad_default;
    else if (strcmp(which, "bad_name") == 0) list_one[0] = &d_bad_name;
    else if (strcmp(which, "no_name") == 0) list_one[0] = &d_no_name;
    else if (strcmp(which, "too_many_states") == 0) list_one[0] = &d_many_states;
    else if (strcmp(which, "too_many_hparams") == 0) list_one[0] = &d_many_hparams;
    else if (strcmp(which, "empty_range") == 0) list_one[0] = &d_empty_range;
    else if (strcmp(which, "dup_hparam") == 0) list_one[0] = &d_dup_hparam;
    else if (strcmp(which, "bad_hparam_name") == 0) list_one[0] = &d_bad_hparam_name;
    else if (strcmp(which, "check_finite") == 0) list_one[0] = &d_check_finite;
    else if (strcmp(which, "no_table") == 0) list_one[0] = &d_no_table;
    else if (strcmp(which, "small_hparam") == 0) list_one[0] = &d_small_hparam;
    else if (strcmp(which, "small_desc") == 0) list_one[0] = &d_small_desc;
    else if (strcmp(which, "small_plugin") == 0) plugin.struct_size = 4;
    else if (strcmp(which, "null_desc") == 0) list_one[0] = NULL;
    else if (strcmp(which, "zero_optimizers") == 0) plugin.optimizer_count = 0;
    else if (strcmp(which, "dup_optimizer") == 0) {
        list_two[0] = &d_twice;
        list_two[1] = &d_twice;
        plugin.optimizers = list_two;
        plugin.optimizer_count = 2;
    } else if (strcmp(which, "partial") == 0) {
        list_two[0] = &d_partial_ok;
        list_two[1] = &d_null_step;
        plugin.optimizers = list_two;
        plugin.optimizer_count = 2;
    }
    return &plugin;
}
