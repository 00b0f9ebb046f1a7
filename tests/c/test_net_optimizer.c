/*
 * test_net_optimizer.c -- a network's optimizer in the caller's hands, and what a newcomer trips
 * over:
 *   - descent_net_optimizer: a borrowed handle; set/get change hyperparameters mid-run with the
 *     state kept (checked bit for bit against a standalone optimizer stepping the same
 *     gradients), checkpoints keep the values set, free and step refuse it;
 *   - descent_optimizer_name;
 *   - batch norm refuses a training batch of 1, and the refusal changes nothing;
 *   - the spec's L2 weight_decay and the optimizer's host L2 are not applied together;
 *   - descent_plugin_load("lion.so") loads the file in the working directory;
 *   - a prepare() failing under DESCENT_OPTIMIZER_INFALLIBLE changes nothing;
 *   - the installed plugin folder is descent/plugins next to the loaded libdescent.so.
 * Run by ctest with DESCENT_PLUGIN_PATH unset.
 */
#define _GNU_SOURCE   /* dlinfo, RTLD_NOLOAD */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "descent.h"

#include "plugin_dirs.h"
#define PREPARE_FAILS DESCENT_TEST_PLUGIN_DIR "/plugin_prepare_fails.so"

#define SPEC "{\"sizes\":[3,4,2],\"seed\":7}"
#define BATCH 4

/* Four samples of three features and their classes. */
static const float X[BATCH * 3] = {0.5f, -1.0f, 2.0f,  1.5f, 0.25f, -0.75f,  -2.0f, 1.0f, 0.5f,  0.1f, 0.2f, 0.3f};
static const int32_t LABELS[BATCH] = {0, 1, 1, 0};

#define MAX_TENSORS 16

static descent_net *make_net(const char *spec) {
    descent_net *net = NULL;
    int32_t status = descent_net_create(spec, &net);
    if (status != DESCENT_OK) {
        printf("FAIL descent_net_create(%s): %s\n", spec, descent_last_error());
        exit(1);
    }
    return net;
}

static descent_optimizer *net_optimizer(descent_net *net) {
    descent_optimizer *opt = NULL;
    if (descent_net_optimizer(net, &opt) != DESCENT_OK) printf("       descent_net_optimizer: %s\n", descent_last_error());
    return opt;
}

static const char *name_of(const descent_optimizer *opt) {
    const char *name = NULL;
    return descent_optimizer_name(opt, &name) == DESCENT_OK ? name : "(failed)";
}

/* The network's parameter and gradient tables, in descent_net_param order. */
typedef struct tensors {
    int64_t count;
    float *params[MAX_TENSORS];
    const float *grads[MAX_TENSORS];
    int64_t lengths[MAX_TENSORS];
} tensors;

static tensors tensors_of(descent_net *net) {
    tensors t = {0};
    t.count = descent_net_param_count(net);
    for (int64_t i = 0; i < t.count && i < MAX_TENSORS; i++) {
        float *grad = NULL;
        descent_net_param(net, i, NULL, &t.params[i], &grad, &t.lengths[i]);
        t.grads[i] = grad;
    }
    return t;
}

/* Whether two networks of the same spec hold bit-identical parameters. */
static int same_parameters(descent_net *a, descent_net *b) {
    tensors ta = tensors_of(a), tb = tensors_of(b);
    if (ta.count != tb.count) return 0;
    for (int64_t i = 0; i < ta.count; i++)
        if (ta.lengths[i] != tb.lengths[i] || memcmp(ta.params[i], tb.params[i], (size_t)ta.lengths[i] * sizeof(float)) != 0)
            return 0;
    return 1;
}

static void test_borrowed_handle_basics(void) {
    printf("\n-- descent_net_optimizer and descent_optimizer_name\n");
    descent_net *net = make_net(SPEC);
    descent_optimizer *opt = (descent_optimizer *)&opt;   /* non-NULL sentinel */
    CHECK_ERROR(descent_net_optimizer(NULL, &opt), DESCENT_ERR_INVALID_ARGUMENT, "descent_net_optimizer: net is NULL",
                "descent_net_optimizer(NULL, &opt)");
    CHECK(opt == NULL, "  ...and *out is NULL");
    CHECK_ERROR(descent_net_optimizer(net, NULL), DESCENT_ERR_INVALID_ARGUMENT, "descent_net_optimizer: out is NULL",
                "descent_net_optimizer(net, NULL)");

    opt = net_optimizer(net);
    CHECK(opt != NULL, "a new network's optimizer is reachable");
    CHECK(strcmp(name_of(opt), "sgd") == 0, "it is sgd (got %s)", name_of(opt));
    CHECK(get_value(opt, "lr") == 0.01, "with lr 0.01 (got %g)", get_value(opt, "lr"));
    CHECK(net_optimizer(net) == opt, "asking again gives the same handle");

    CHECK_STATUS(descent_net_set_optimizer(net, "rmsprop", "lr=0.002"), DESCENT_OK, "set_optimizer(rmsprop, lr=0.002)");
    opt = net_optimizer(net);
    CHECK(strcmp(name_of(opt), "rmsprop") == 0, "the handle now names rmsprop (got %s)", name_of(opt));
    CHECK(get_value(opt, "lr") == 0.002, "with lr 0.002 (got %g)", get_value(opt, "lr"));
    CHECK_ERROR(descent_net_set_optimizer(net, "momentum", "nope=1"), DESCENT_ERR_NOT_FOUND,
                "descent_net_set_optimizer: unknown hyperparameter 'nope' for momentum; known: lr, momentum, weight_decay, "
                "check_finite",
                "a failing set_optimizer");
    CHECK(strcmp(name_of(opt), "rmsprop") == 0 && get_value(opt, "lr") == 0.002,
          "  ...leaves the optimizer and its handle as they were");

    const char *name = (const char *)&name;
    CHECK_ERROR(descent_optimizer_name(NULL, &name), DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_name: opt is NULL",
                "descent_optimizer_name(NULL, &name)");
    CHECK(name == NULL, "  ...and *name is NULL");
    CHECK_ERROR(descent_optimizer_name(opt, NULL), DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_name: name is NULL",
                "descent_optimizer_name(opt, NULL)");
    descent_optimizer *own = NULL;
    CHECK_STATUS(descent_optimizer_create("nesterov", NULL, &own), DESCENT_OK, "create(nesterov)");
    CHECK(strcmp(name_of(own), "nesterov") == 0, "descent_optimizer_name works on owned handles too (got %s)", name_of(own));
    CHECK_STATUS(descent_optimizer_free(own), DESCENT_OK, "descent_optimizer_free(an owned handle) -> DESCENT_OK");
    CHECK_STATUS(descent_optimizer_free(NULL), DESCENT_OK, "descent_optimizer_free(NULL) -> DESCENT_OK");
    descent_net_free(net);
}

/* Network A steps with its own optimizer, whose lr is changed through the borrowed handle
 * between steps; network B (same spec) computes the same gradients and a standalone adam
 * steps them, with the same lr changes. Equal bits mean the handle changed the value and kept
 * the moments and the step count, exactly as descent_optimizer_set does on any optimizer. */
static void test_schedule_keeps_state(void) {
    printf("\n-- a learning-rate schedule through the handle keeps the state\n");
    descent_net *a = make_net(SPEC), *b = make_net(SPEC);
    CHECK_STATUS(descent_net_set_optimizer(a, "adam", "lr=0.01,eps_hat=0"), DESCENT_OK, "A: set_optimizer(adam)");
    descent_optimizer *ref = NULL;
    CHECK_STATUS(descent_optimizer_create("adam", "lr=0.01,eps_hat=0", &ref), DESCENT_OK, "B: a standalone adam");
    descent_optimizer *opt = net_optimizer(a);
    const double schedule[3] = {0.01, 0.005, 0.0025};
    tensors tb = tensors_of(b);
    for (int k = 0; k < 3; k++) {
        CHECK_STATUS(descent_optimizer_set(opt, "lr", schedule[k]), DESCENT_OK, "A: set lr through the handle");
        CHECK_STATUS(descent_optimizer_set(ref, "lr", schedule[k]), DESCENT_OK, "B: set lr on the standalone adam");
        CHECK_STATUS(descent_net_forward_backward(a, X, LABELS, BATCH, NULL), DESCENT_OK, "A: forward_backward");
        CHECK_STATUS(descent_net_apply_update(a), DESCENT_OK, "A: apply_update");
        CHECK_STATUS(descent_net_forward_backward(b, X, LABELS, BATCH, NULL), DESCENT_OK, "B: forward_backward");
        CHECK_STATUS(descent_optimizer_step(ref, tb.count, tb.params, tb.grads, tb.lengths), DESCENT_OK,
                     "B: the standalone adam steps B's parameters");
    }
    CHECK(same_parameters(a, b), "after 3 steps at lr 0.01, 0.005, 0.0025 both networks hold the same bits");
    CHECK(get_value(opt, "step") == 3, "the handle's step count is 3 (got %g)", get_value(opt, "step"));

    printf("\n-- the handle is the network's: free and step refuse it\n");
    CHECK_ERROR(descent_optimizer_free(opt), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_free: opt is a network's optimizer (from descent_net_optimizer): it is freed with the "
                "network by descent_net_free",
                "descent_optimizer_free(the network's optimizer)");
    float p[2] = {1, 2}, g[2] = {0.5f, 0.5f};
    float *ps[1] = {p};
    const float *gs[1] = {g};
    const int64_t ls[1] = {2};
    CHECK_ERROR(descent_optimizer_step(opt, 1, ps, gs, ls), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_step: opt is a network's optimizer (from descent_net_optimizer): it steps only with the "
                "network's tensors, through descent_net_train_step or descent_net_apply_update",
                "descent_optimizer_step(the network's optimizer)");
    CHECK(p[0] == 1 && p[1] == 2, "  ...and the caller's tensor is untouched");
    CHECK(get_value(opt, "step") == 3 && get_value(opt, "lr") == 0.0025, "  ...and the optimizer is as it was");
    /* Freed or stepped, the next step would differ (or crash): both networks still agree. */
    CHECK_STATUS(descent_net_forward_backward(a, X, LABELS, BATCH, NULL), DESCENT_OK, "A: a 4th step still works");
    CHECK_STATUS(descent_net_apply_update(a), DESCENT_OK, "A: apply_update");
    CHECK_STATUS(descent_net_forward_backward(b, X, LABELS, BATCH, NULL), DESCENT_OK, "B: forward_backward");
    CHECK_STATUS(descent_optimizer_step(ref, tb.count, tb.params, tb.grads, tb.lengths), DESCENT_OK, "B: step");
    CHECK(same_parameters(a, b), "  ...and both networks still hold the same bits");

    printf("\n-- a checkpoint keeps the hyperparameters set through the handle\n");
    const char *path = "net_optimizer.safetensors";
    CHECK_STATUS(descent_optimizer_set(opt, "lr", 0.000625), DESCENT_OK, "set lr 0.000625 through the handle");
    CHECK_STATUS(descent_optimizer_set(opt, "beta2", 0.99), DESCENT_OK, "set beta2 0.99 through the handle");
    CHECK_STATUS(descent_net_save(a, path), DESCENT_OK, "descent_net_save");
    descent_net *c = NULL;
    CHECK_STATUS(descent_net_load(path, &c), DESCENT_OK, "descent_net_load");
    if (c) {
        descent_optimizer *loaded = net_optimizer(c);
        CHECK(strcmp(name_of(loaded), "adam") == 0, "the loaded network's optimizer is adam (got %s)", name_of(loaded));
        CHECK(get_value(loaded, "lr") == 0.000625, "with lr 0.000625 (got %g)", get_value(loaded, "lr"));
        CHECK(get_value(loaded, "beta2") == 0.99, "beta2 0.99 (got %g)", get_value(loaded, "beta2"));
        CHECK(get_value(loaded, "eps_hat") == 0, "eps_hat 0 (got %g)", get_value(loaded, "eps_hat"));
        CHECK(get_value(loaded, "step") == 4, "and step 4 (got %g)", get_value(loaded, "step"));
        CHECK_ERROR(descent_optimizer_free(loaded), DESCENT_ERR_INVALID_ARGUMENT,
                    "descent_optimizer_free: opt is a network's optimizer (from descent_net_optimizer): it is freed with "
                    "the network by descent_net_free",
                    "a loaded network's optimizer is the network's too");
        descent_net_free(c);
    }
    remove(path);

    CHECK_STATUS(descent_optimizer_reset(opt), DESCENT_OK, "descent_optimizer_reset on the handle");
    CHECK(get_value(opt, "step") == 0, "  ...restarts the network's optimizer at step 0");
    descent_optimizer_free(ref);
    descent_net_free(a);
    descent_net_free(b);
}

#define BN_SPEC "{\"sizes\":[3,5,2],\"batchnorm\":true,\"dropout\":0.5,\"seed\":11}"
#define BN_MESSAGE "batch is 1, but training a network with batch norm needs at least 2 samples per batch (the " \
                   "variance of a single sample is undefined); predict and evaluate accept 1"

/* P is refused a batch of 1 in both training calls, Q never sees it; afterwards the same calls
 * on both must give the same bits: parameters, batch-norm averages (evaluate), dropout masks
 * (the random state), optimizer state, and the pending gradients. */
static void test_batch_norm_batch_of_one(void) {
    printf("\n-- batch norm: a training batch of 1 is refused, and changes nothing\n");
    descent_net *p = make_net(BN_SPEC), *q = make_net(BN_SPEC);
    CHECK_STATUS(descent_net_set_optimizer(p, "adam", "lr=0.01"), DESCENT_OK, "P: adam");
    CHECK_STATUS(descent_net_set_optimizer(q, "adam", "lr=0.01"), DESCENT_OK, "Q: adam");
    float lp = 0, lq = 0;
    CHECK_STATUS(descent_net_train_step(p, X, LABELS, BATCH, &lp), DESCENT_OK, "P: a first step of 4");
    CHECK_STATUS(descent_net_train_step(q, X, LABELS, BATCH, &lq), DESCENT_OK, "Q: a first step of 4");

    float loss = -1;
    CHECK_ERROR(descent_net_train_step(p, X, LABELS, 1, &loss), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_train_step: " BN_MESSAGE, "P: train_step with batch 1");
    CHECK(loss == -1, "  ...and *loss is untouched");
    CHECK_STATUS(descent_net_forward_backward(p, X, LABELS, BATCH, NULL), DESCENT_OK, "P: forward_backward of 4");
    CHECK_ERROR(descent_net_forward_backward(p, X, LABELS, 1, &loss), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_forward_backward: " BN_MESSAGE, "P: forward_backward with batch 1");
    CHECK_STATUS(descent_net_apply_update(p), DESCENT_OK, "P: the gradients of 4 are still pending and applied");
    CHECK_STATUS(descent_net_forward_backward(q, X, LABELS, BATCH, NULL), DESCENT_OK, "Q: forward_backward of 4");
    CHECK_STATUS(descent_net_apply_update(q), DESCENT_OK, "Q: apply_update");
    for (int k = 0; k < 2; k++) {
        CHECK_STATUS(descent_net_train_step(p, X, LABELS, BATCH, &lp), DESCENT_OK, "P: a step of 4");
        CHECK_STATUS(descent_net_train_step(q, X, LABELS, BATCH, &lq), DESCENT_OK, "Q: a step of 4");
        CHECK(memcmp(&lp, &lq, sizeof lp) == 0, "  ...same loss bits (%.9g, %.9g)", lp, lq);
    }
    CHECK(same_parameters(p, q), "P and Q hold the same parameters");
    float ep, eq, ap, aq;
    CHECK_STATUS(descent_net_evaluate(p, X, LABELS, BATCH, &ep, &ap), DESCENT_OK, "P: evaluate");
    CHECK_STATUS(descent_net_evaluate(q, X, LABELS, BATCH, &eq, &aq), DESCENT_OK, "Q: evaluate");
    CHECK(memcmp(&ep, &eq, sizeof ep) == 0, "  ...same evaluation loss, so the same running averages (%.9g)", ep);

    float pp[2], pq[2];
    CHECK_STATUS(descent_net_predict(p, X, 1, pp), DESCENT_OK, "predict with batch 1 is allowed");
    CHECK_STATUS(descent_net_predict(q, X, 1, pq), DESCENT_OK, "  (Q too)");
    CHECK(memcmp(pp, pq, sizeof pp) == 0 && fabsf(pp[0] + pp[1] - 1) < 1e-6f, "  ...same probabilities, summing to 1");
    CHECK_STATUS(descent_net_evaluate(p, X, LABELS, 1, &ep, &ap), DESCENT_OK, "evaluate with n 1 is allowed");
    descent_net_free(p);
    descent_net_free(q);

    descent_net *plain = make_net(SPEC);
    CHECK_STATUS(descent_net_train_step(plain, X, LABELS, 1, NULL), DESCENT_OK, "without batch norm, batch 1 trains");
    descent_net_free(plain);
}

#define DOUBLE_L2(fn, opt, value) \
    fn ": " opt "'s weight_decay=" value " (L2 on the gradients) would decay the weights a second time: the network's " \
       "spec has weight_decay=0.01 (L2 in the loss); keep one of the two at 0"

static void test_one_l2(void) {
    printf("\n-- the spec's L2 and the optimizer's host L2 are not applied together\n");
    descent_net *net = make_net("{\"sizes\":[3,4,2],\"weight_decay\":0.01,\"seed\":1}");
    CHECK_STATUS(descent_net_set_optimizer(net, "momentum", "lr=0.05"), DESCENT_OK, "set_optimizer(momentum)");
    CHECK_ERROR(descent_net_set_optimizer(net, "sgd", "lr=0.1,weight_decay=0.001"), DESCENT_ERR_INVALID_ARGUMENT,
                DOUBLE_L2("descent_net_set_optimizer", "sgd", "0.001"), "set_optimizer(sgd, weight_decay=0.001)");
    descent_optimizer *opt = net_optimizer(net);
    CHECK(strcmp(name_of(opt), "momentum") == 0 && get_value(opt, "lr") == 0.05, "  ...the optimizer stays momentum, lr 0.05");

    CHECK_ERROR(descent_optimizer_set(opt, "weight_decay", 0.001), DESCENT_ERR_INVALID_ARGUMENT,
                DOUBLE_L2("descent_optimizer_set", "momentum", "0.001"), "set weight_decay 0.001 through the handle");
    CHECK(get_value(opt, "weight_decay") == 0, "  ...weight_decay stays 0");
    CHECK_STATUS(descent_optimizer_set(opt, "weight_decay", 0), DESCENT_OK, "setting it to 0 is fine");
    CHECK_STATUS(descent_net_set_optimizer(net, "adamw", "weight_decay=0.05"), DESCENT_OK,
                 "adamw's decoupled weight_decay=0.05 is allowed with the spec's L2");
    opt = net_optimizer(net);
    CHECK_STATUS(descent_optimizer_set(opt, "weight_decay", 0.1), DESCENT_OK, "  ...and may be changed through the handle");
    CHECK_STATUS(descent_net_train_step(net, X, LABELS, BATCH, NULL), DESCENT_OK, "  ...and trains");
    descent_net_free(net);

    descent_net *plain = make_net(SPEC);
    CHECK_STATUS(descent_net_set_optimizer(plain, "sgd", "weight_decay=0.001"), DESCENT_OK,
                 "without a spec weight_decay, the host's L2 is allowed");
    CHECK_STATUS(descent_optimizer_set(net_optimizer(plain), "weight_decay", 0.002), DESCENT_OK,
                 "  ...also through the handle");

    /* A checkpoint that holds both (written before this rule, or by hand) is refused on load:
     * save one with the host's L2 and a spec weight_decay of 0, then make that 1 in place. */
    const char *path = "net_optimizer_l2.safetensors";
    CHECK_STATUS(descent_net_save(plain, path), DESCENT_OK, "save a network with sgd's weight_decay=0.002");
    descent_net_free(plain);
    FILE *f = fopen(path, "r+b");
    char header[4096] = {0};
    size_t got = f ? fread(header, 1, sizeof header - 1, f) : 0;
    const char *needle = "\\\"weight_decay\\\":0,";
    char *at = got ? memmem(header, got, needle, strlen(needle)) : NULL;
    CHECK(at != NULL, "the checkpoint's spec holds %s", needle);
    if (f && at) {
        fseek(f, (long)(at - header) + (long)strlen(needle) - 2, SEEK_SET);
        fputc('1', f);
    }
    if (f) fclose(f);
    descent_net *loaded = (descent_net *)&loaded;
    CHECK_ERROR(descent_net_load(path, &loaded), DESCENT_ERR_FORMAT,
                sfmt("descent_net_load: '%s': __metadata__ 'optimizer_hparams' is not valid for sgd: sgd's "
                     "weight_decay=0.002 (L2 on the gradients) would decay the weights a second time: the network's "
                     "spec has weight_decay=1 (L2 in the loss); keep one of the two at 0", path),
                "loading a checkpoint whose spec and optimizer both have L2");
    CHECK(loaded == NULL, "  ...and *out is NULL");
    remove(path);
}

static void test_relative_plugin_path(void) {
    printf("\n-- descent_plugin_load with a file name in the working directory\n");
    char cwd[PATH_MAX];
    CHECK(getcwd(cwd, sizeof cwd) != NULL && chdir(DESCENT_PLUGIN_DIR) == 0, "cd %s", DESCENT_PLUGIN_DIR);
    CHECK_ERROR(descent_plugin_load("nope.so"), DESCENT_ERR_NOT_FOUND, "descent_plugin_load: no such file: nope.so",
                "descent_plugin_load(\"nope.so\")");
    CHECK_STATUS(descent_plugin_load("lion.so"), DESCENT_OK, "descent_plugin_load(\"lion.so\") (no slash)");
    descent_optimizer *opt = NULL;
    CHECK_STATUS(descent_optimizer_create("lion", NULL, &opt), DESCENT_OK, "  ...lion is registered");
    descent_optimizer_free(opt);
    CHECK(chdir(cwd) == 0, "cd back");
}

/* Copies of a network's parameters, to check a failed step left them alone. */
static int parameters_equal(descent_net *net, float *copy, int save) {
    tensors t = tensors_of(net);
    size_t at = 0;
    int same = 1;
    for (int64_t i = 0; i < t.count; i++) {
        size_t bytes = (size_t)t.lengths[i] * sizeof(float);
        if (save) memcpy(copy + at, t.params[i], bytes);
        else same &= memcmp(copy + at, t.params[i], bytes) == 0;
        at += (size_t)t.lengths[i];
    }
    return same;
}

static void test_infallible_prepare_fails(void) {
    printf("\n-- prepare() may fail under DESCENT_OPTIMIZER_INFALLIBLE, and changes nothing\n");
    CHECK_STATUS(descent_plugin_load(PREPARE_FAILS), DESCENT_OK, "load plugin_prepare_fails.so");
    descent_net *net = make_net(SPEC);   /* no batch norm or dropout: batch 1 takes the one-pass step */
    CHECK_STATUS(descent_net_set_optimizer(net, "prepare_fails", "lr=0.1,fail_prepare_at=2"), DESCENT_OK,
                 "set_optimizer(prepare_fails, fail_prepare_at=2)");
    CHECK_STATUS(descent_net_train_step(net, X, LABELS, 1, NULL), DESCENT_OK, "step 1 (batch 1)");
    float copy[64];
    CHECK(descent_net_param_count(net) == 4 && parameters_equal(net, copy, 1), "parameters copied");
    const int64_t batches[2] = {1, BATCH};
    for (int k = 0; k < 2; k++) {
        float loss = -1;
        CHECK_ERROR(descent_net_train_step(net, X, LABELS, batches[k], &loss), DESCENT_ERR_PLUGIN,
                    "descent_net_train_step: optimizer 'prepare_fails' (" PREPARE_FAILS ") failed in prepare: "
                    "prepare_fails: asked to fail at step 2; parameters and state are unchanged",
                    k == 0 ? "step 2 at batch 1 (one pass, no rollback copy)" : "step 2 at batch 4");
        CHECK(parameters_equal(net, copy, 0), "  ...the parameters are unchanged");
        CHECK(get_value(net_optimizer(net), "step") == 1, "  ...the step count is still 1");
        CHECK(loss == -1, "  ...*loss is untouched");
    }
    CHECK_STATUS(descent_optimizer_set(net_optimizer(net), "fail_prepare_at", 0), DESCENT_OK, "fail_prepare_at = 0");
    CHECK_STATUS(descent_net_train_step(net, X, LABELS, 1, NULL), DESCENT_OK, "  ...then step 2 succeeds");
    CHECK(!parameters_equal(net, copy, 0), "  ...and changes the parameters");
    descent_net_free(net);
}

/* The installed folder, found here independently of the library: the link map's file name. */
static void test_installed_plugin_folder(void) {
    printf("\n-- the installed plugin folder\n");
    void *self = dlopen("libdescent.so.0", RTLD_NOW | RTLD_NOLOAD);   /* the SONAME */
    struct link_map *map = NULL;
    CHECK(self && dlinfo(self, RTLD_DI_LINKMAP, &map) == 0 && map, "libdescent.so is in the link map");
    if (!map) return;
    char *file = realpath(map->l_name, NULL);
    char expected[PATH_MAX + 32];
    snprintf(expected, sizeof expected, "%s/descent/plugins", file ? dirname(file) : "?");
    free(file);
    dlclose(self);

    char path[PATH_MAX * 4];
    int64_t needed = 0;
    CHECK_STATUS(descent_plugin_search_path(path, (int64_t)sizeof path, &needed), DESCENT_OK, "descent_plugin_search_path");
    CHECK(needed == (int64_t)strlen(path) + 1, "  ...needed is its size with the NUL");
    if (getenv("DESCENT_PLUGIN_PATH") == NULL) {
        CHECK(strcmp(path, expected) == 0, "with DESCENT_PLUGIN_PATH unset it is %s (got %s)", expected, path);
    } else {
        size_t n = strlen(path), m = strlen(expected);
        CHECK(n >= m && strcmp(path + n - m, expected) == 0, "it ends with %s (got %s)", expected, path);
    }
    descent_optimizer *opt = NULL;
    CHECK_ERROR(descent_optimizer_create("adabelief", NULL, &opt), DESCENT_ERR_NOT_FOUND,
                sfmt("descent_optimizer_create: unknown optimizer 'adabelief'; known: sgd, momentum, nesterov, adagrad, "
                     "rmsprop, adam, adamw, lion, prepare_fails; plugin folders searched: %s", searched_folders()),
                "an unknown name lists the plugin folders searched");
    CHECK(strstr(descent_last_error(), expected) != NULL, "  ...among them %s", expected);
}

int main(void) {
    test_borrowed_handle_basics();
    test_schedule_keeps_state();
    test_batch_norm_batch_of_one();
    test_one_l2();
    test_relative_plugin_path();
    test_infallible_prepare_fails();
    test_installed_plugin_folder();
    return check_summary();
}
