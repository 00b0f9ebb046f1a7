/*
 * test_plugins.c -- the plugin ABI from the host's side.
 *
 *   - examples/plugins/lion.so: loads, shows up in descent_optimizer_names and describe, updates
 *     exactly as hand-computed for 3 steps, loads again idempotently, and takes over training
 *     from adam mid-way (swap by name: weights kept, state fresh);
 *   - fixtures (tests/c/plugins/): another ABI major version, a library without the entry
 *     symbol, a name collision (with a built-in and with another plugin), a step that fails
 *     after writing (parameters and state rolled back), a missing file, invalid descriptors of
 *     every kind, and a plugin from a newer minor version with larger structs;
 *   - descent_plugin_load_dir on folders.
 * Every failure is checked for its status and its exact message, and for registering nothing.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "descent.h"
#include "descent_plugin.h"

#include "plugin_dirs.h"

#define LION DESCENT_PLUGIN_DIR "/lion.so"
#define FIXTURE(stem) DESCENT_TEST_PLUGIN_DIR "/" stem ".so"
#define BUILTINS "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw"

static char tmpdir[256];   /* scratch folder for copies and symlinks, removed at the end */

/* ---- helpers ------------------------------------------------------------------------------*/

static int has_name(const char *name) {
    char *names = names_string();
    int found = names && list_has(names, name);
    free(names);
    return found;
}

static int name_count(const char *name) {
    char *names = names_string();
    int count = names ? list_count(names, name) : -1;
    free(names);
    return count;
}

/* A failing load: status, exact message, and the names list is exactly as before. */
static void expect_load_error(const char *path, int32_t status, const char *message, const char *what) {
    char *before = names_string();
    CHECK_ERROR(descent_plugin_load(path), status, message, what);
    char *after = names_string();
    CHECK(before && after && strcmp(before, after) == 0, "  ...nothing was registered (names: %s)",
          after ? after : "(NULL)");
    free(before);
    free(after);
}

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    if (!in || !out) {
        if (in) fclose(in);
        return 0;
    }
    char buf[65536];
    size_t n;
    int ok = 1;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ok &= fwrite(buf, 1, n, out) == n;
    fclose(in);
    return fclose(out) == 0 && ok;
}

/* One Lion step in double, written from the paper (not from lion.c). */
static void lion_reference(double *p, double *m, const double *g, int n, double lr, double beta1, double beta2,
                           double wd) {
    for (int i = 0; i < n; i++) {
        double c = beta1 * m[i] + (1 - beta1) * g[i];
        double s = c > 0 ? 1 : (c < 0 ? -1 : 0);
        p[i] -= lr * (s + wd * p[i]);
        m[i] = beta2 * m[i] + (1 - beta2) * g[i];
    }
}

/* ---- lion ---------------------------------------------------------------------------------*/

static void test_lion_load(void) {
    printf("\n-- loading lion (%s)\n", LION);
    CHECK(!has_name("lion"), "before loading, \"lion\" is not registered");
    descent_optimizer *opt = NULL;
    CHECK_ERROR(descent_optimizer_create("lion", NULL, &opt), DESCENT_ERR_NOT_FOUND,
                sfmt("descent_optimizer_create: unknown optimizer 'lion'; known: sgd, momentum, nesterov, adagrad, rmsprop, "
                     "adam, adamw; plugin folders searched: %s", searched_folders()),
                "create(\"lion\") before loading");

    CHECK_STATUS(descent_plugin_load(LION), DESCENT_OK, "descent_plugin_load(lion.so)");
    char *names = names_string();
    CHECK(names && strcmp(names, BUILTINS ",lion") == 0, "names are the built-ins then lion: \"%s\"",
          names ? names : "(NULL)");
    free(names);

    CHECK_STATUS(descent_plugin_load(LION), DESCENT_OK, "loading lion.so again succeeds (idempotent)");
    CHECK_STATUS(descent_plugin_load(DESCENT_PLUGIN_DIR "/./lion.so"), DESCENT_OK,
                 "loading it through another spelling of the path succeeds too");
    CHECK(name_count("lion") == 1, "\"lion\" is registered exactly once");

    char *d = describe_string("lion");
    CHECK(d != NULL, "describe(\"lion\")");
    if (d) {
        printf("     lion: %s\n", d);
        CHECK(json_valid(d), "describe(lion) is well-formed JSON");
        CHECK(strstr(d, "\"name\":\"lion\"") != NULL, "has \"name\":\"lion\"");
        CHECK(strstr(d, sfmt("\"origin\":\"%s\"", LION)) != NULL, "origin is the plugin's path");
        CHECK(strstr(d, "\"state_buffers\":1") != NULL, "state_buffers is 1 (m)");
        CHECK(strstr(d, "{\"name\":\"lr\",\"default\":0.0001,\"min\":0,\"max\":null,\"min_exclusive\":true,") != NULL,
              "lr: default 1e-4, > 0");
        CHECK(strstr(d, "{\"name\":\"beta1\",\"default\":0.9,\"min\":0,\"max\":1,\"min_exclusive\":false,"
                        "\"max_exclusive\":true,") != NULL,
              "beta1: default 0.9, [0, 1)");
        CHECK(strstr(d, "{\"name\":\"beta2\",\"default\":0.99,\"min\":0,\"max\":1,") != NULL &&
                  strstr(d, "\"range\":\"[0, 1)\"") != NULL,
              "beta2: default 0.99, [0, 1)");
        CHECK(strstr(d, "{\"name\":\"weight_decay\",\"default\":0,\"min\":0,\"max\":null,") != NULL,
              "weight_decay: default 0, >= 0");
        CHECK(strstr(d, "{\"name\":\"weight_decay\",\"default\":0,\"min\":0,\"max\":null,\"min_exclusive\":false,"
                        "\"max_exclusive\":false,\"boolean\":false,\"range\":\"[0, inf)\",\"provided_by\":\"optimizer\"") != NULL,
              "weight_decay is lion's own (decoupled): the host adds no L2 of its own");
        const char *cf = strstr(d, "{\"name\":\"check_finite\",\"default\":1,\"min\":0,\"max\":1,\"min_exclusive\":false,"
                                   "\"max_exclusive\":false,\"boolean\":true,\"range\":\"{0, 1}\",\"provided_by\":\"host\"");
        CHECK(cf != NULL && strstr(cf + 1, "{\"name\":") == NULL,
              "the host's check_finite (boolean, default 1) comes last");
        const char *host = strstr(d, "\"provided_by\":\"host\"");
        CHECK(host && strstr(host + 1, "\"provided_by\":\"host\"") == NULL,
              "check_finite is lion's only host-provided hyperparameter");
        free(d);
    }
    if (descent_optimizer_create("lion", NULL, &opt) == DESCENT_OK) {
        CHECK(get_value(opt, "lr") == 1e-4 && get_value(opt, "beta1") == 0.9 && get_value(opt, "beta2") == 0.99 &&
                  get_value(opt, "weight_decay") == 0.0 && get_value(opt, "check_finite") == 1.0,
              "create(\"lion\") has the defaults lr 1e-4, beta1 0.9, beta2 0.99, weight_decay 0, check_finite 1");
        descent_optimizer_free(opt);
    } else {
        CHECK(0, "create(\"lion\"): %s", descent_last_error());
    }
    CHECK_ERROR(descent_optimizer_create("lion", "beta1=1", &opt), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_create: hyperparameter 'beta1' = 1 is out of range [0, 1)", "lion beta1=1");
    CHECK_ERROR(descent_optimizer_create("lion", "beta2=-0.1", &opt), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_create: hyperparameter 'beta2' = -0.1 is out of range [0, 1)", "lion beta2=-0.1");
    CHECK_ERROR(descent_optimizer_create("lion", "lr=0", &opt), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_create: hyperparameter 'lr' = 0 is out of range (0, inf)", "lion lr=0");
    CHECK_ERROR(descent_optimizer_create("lion", "weight_decay=-1", &opt), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_create: hyperparameter 'weight_decay' = -1 is out of range [0, inf)",
                "lion weight_decay=-1");
    CHECK_ERROR(descent_optimizer_create("lion", "check_finite=0.5", &opt), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_create: hyperparameter 'check_finite' = 0.5 is out of range {0, 1}",
                "lion check_finite=0.5");
    CHECK_ERROR(descent_optimizer_create("lion", "momentum=0.9", &opt), DESCENT_ERR_NOT_FOUND,
                "descent_optimizer_create: unknown hyperparameter 'momentum' for lion; known: lr, beta1, beta2, "
                "weight_decay, check_finite",
                "lion has no 'momentum'");
}

/*
 * Three Lion steps by hand, lr 0.1, beta1 0.9, beta2 0.99, weight_decay 0.5, so
 * p - lr*(sign(c) + wd*p) = 0.95*p - 0.1*sign(c).
 *
 *   p0 = [1, -2, 0.5, 3]
 *   g1 = [1, -1, 0, 2]        c = 0.1*g1 = [0.1, -0.1, 0, 0.2]        sign [ 1, -1, 0,  1]
 *        p1 = [0.85, -1.8, 0.475, 2.75]      m1 = 0.01*g1 = [0.01, -0.01, 0, 0.02]
 *   g2 = [-0.05, -1, 0, -4]   c = 0.9*m1 + 0.1*g2 = [0.004, -0.109, 0, -0.382]  sign [1, -1, 0, -1]
 *        (element 0: the gradient is negative but the momentum wins)
 *        p2 = [0.7075, -1.61, 0.45125, 2.7125]
 *        m2 = 0.99*m1 + 0.01*g2 = [0.0094, -0.0199, 0, -0.0202]
 *   g3 = [0.5, 0.02, 0, 1]    c = 0.9*m2 + 0.1*g3 = [0.05846, -0.01591, 0, 0.08182]  sign [1, -1, 0, 1]
 *        (element 1: the gradient is positive but the momentum wins)
 *        p3 = [0.572125, -1.4295, 0.4286875, 2.476875]
 * Element 2 (g = 0 throughout) only decays: had the host added L2 (g + wd*p) it would see c > 0
 * and also move by -lr, so these numbers also prove the decay is the decoupled one.
 */
static void test_lion_by_hand(void) {
    printf("\n-- lion: three steps against hand-computed values\n");
    descent_optimizer *opt = NULL;
    if (descent_optimizer_create("lion", "lr=0.1,beta1=0.9,beta2=0.99,weight_decay=0.5", &opt) != DESCENT_OK) {
        CHECK(0, "create lion: %s", descent_last_error());
        return;
    }
    float p[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    static const float g[3][4] = {{1.0f, -1.0f, 0.0f, 2.0f}, {-0.05f, -1.0f, 0.0f, -4.0f}, {0.5f, 0.02f, 0.0f, 1.0f}};
    static const double want[3][4] = {
        {0.85, -1.8, 0.475, 2.75},
        {0.7075, -1.61, 0.45125, 2.7125},
        {0.572125, -1.4295, 0.4286875, 2.476875},
    };
    float *params[1] = {p};
    int64_t lengths[1] = {4};
    for (int t = 0; t < 3; t++) {
        const float *grads[1] = {g[t]};
        CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_OK, sfmt("lion step %d", t + 1));
        for (int i = 0; i < 4; i++)
            CHECK_NEAR(p[i], want[t][i], 1e-6, sfmt("lion step %d, p[%d]", t + 1, i));
    }
    CHECK(get_value(opt, "step") == 3.0, "step count 3");
    descent_optimizer_free(opt);
}

/* Train with adam, then swap to lion by name on the same parameters. */
static void test_swap(void) {
    printf("\n-- swap by name mid-training: adam for 5 steps, then lion for 5\n");
    enum { N0 = 6, N1 = 3 };
    float a[N0], b[N1], ga[N0], gb[N1];
    for (int i = 0; i < N0; i++) a[i] = 0.3f * (float)i - 0.7f;
    for (int i = 0; i < N1; i++) b[i] = 1.5f - 0.4f * (float)i;
    float *params[2] = {a, b};
    const float *grads[2] = {ga, gb};
    const int64_t lengths[2] = {N0, N1};

    descent_optimizer *adam = NULL, *lion = NULL, *fresh = NULL;
    if (descent_optimizer_create("adam", "lr=0.05", &adam) != DESCENT_OK) {
        CHECK(0, "create adam: %s", descent_last_error());
        return;
    }
    /* gradient of f = sum(p^2)/2 plus a wobble, so signs change along the way */
#define GRADS(t)                                                                           \
    do {                                                                                   \
        for (int i = 0; i < N0; i++) ga[i] = a[i] + 0.05f * (float)((i + (t)) % 3 - 1);  \
        for (int i = 0; i < N1; i++) gb[i] = b[i] - 0.02f * (float)((t) % 2);             \
    } while (0)
    int ok = 1;
    for (int t = 0; t < 5; t++) {
        GRADS(t);
        ok &= descent_optimizer_step(adam, 2, params, grads, lengths) == DESCENT_OK;
    }
    CHECK(ok, "5 adam steps");
    descent_optimizer_free(adam);

    /* the swap: a new optimizer by name, same parameters, fresh state */
    float a2[N0], b2[N1];
    memcpy(a2, a, sizeof a);
    memcpy(b2, b, sizeof b);
    double ra[N0], rb[N1], ma[N0] = {0}, mb[N1] = {0}, dga[N0], dgb[N1];
    for (int i = 0; i < N0; i++) ra[i] = a[i];
    for (int i = 0; i < N1; i++) rb[i] = b[i];
    if (descent_optimizer_create("lion", "lr=0.01,weight_decay=0.1", &lion) != DESCENT_OK ||
        descent_optimizer_create("lion", "lr=0.01,weight_decay=0.1", &fresh) != DESCENT_OK) {
        CHECK(0, "create lion: %s", descent_last_error());
        return;
    }
    float *params2[2] = {a2, b2};
    float ga2[N0], gb2[N1];
    const float *grads2[2] = {ga2, gb2};
    for (int t = 5; t < 10; t++) {
        GRADS(t);
        memcpy(ga2, ga, sizeof ga);
        memcpy(gb2, gb, sizeof gb);
        for (int i = 0; i < N0; i++) dga[i] = ga[i];
        for (int i = 0; i < N1; i++) dgb[i] = gb[i];
        ok &= descent_optimizer_step(lion, 2, params, grads, lengths) == DESCENT_OK;
        ok &= descent_optimizer_step(fresh, 2, params2, grads2, lengths) == DESCENT_OK;
        lion_reference(ra, ma, dga, N0, 0.01, 0.9, 0.99, 0.1);
        lion_reference(rb, mb, dgb, N1, 0.01, 0.9, 0.99, 0.1);
    }
#undef GRADS
    CHECK(ok, "5 lion steps on the parameters adam left");
    CHECK(get_value(lion, "step") == 5.0, "lion counts its own steps from 1 (step == 5)");
    double worst = 0;
    for (int i = 0; i < N0; i++) worst = fmax(worst, fabs(a[i] - ra[i]));
    for (int i = 0; i < N1; i++) worst = fmax(worst, fabs(b[i] - rb[i]));
    CHECK(worst <= 1e-6, "lion after adam matches a double-precision Lion from the same point (max error %.2g)", worst);
    CHECK(memcmp(a, a2, sizeof a) == 0 && memcmp(b, b2, sizeof b) == 0,
          "and equals, bit for bit, a lion that never saw adam (the swap starts from fresh state)");
    descent_optimizer_free(lion);
    descent_optimizer_free(fresh);
}

/* ---- fixtures: loads that must fail --------------------------------------------------------*/

static void test_bad_plugins(void) {
    printf("\n-- plugins that must be refused\n");
    expect_load_error(FIXTURE("plugin_abi2"), DESCENT_ERR_PLUGIN,
                      "descent_plugin_load: " FIXTURE("plugin_abi2") ": built for plugin ABI 2.0, but this host speaks ABI 1.0",
                      "a plugin built for ABI 2.0 (the message names both versions)");
    CHECK(!has_name("abi2_sgd"), "  ...its optimizer abi2_sgd is not registered");

    expect_load_error(FIXTURE("not_a_plugin"), DESCENT_ERR_PLUGIN,
                      "descent_plugin_load: '" FIXTURE("not_a_plugin") "' is not a Descent plugin: it does not export "
                      "descent_plugin_entry",
                      "a shared library without descent_plugin_entry");

    expect_load_error(FIXTURE("plugin_collide"), DESCENT_ERR_PLUGIN,
                      "descent_plugin_load: " FIXTURE("plugin_collide") ": optimizer 'adam' collides with the one from built-in",
                      "a plugin declaring \"adam\" (taken by a built-in)");
    CHECK(!has_name("collide_ok"), "  ...all or none: its other optimizer collide_ok is not registered either");
    char *adam = describe_string("adam");
    CHECK(adam && strstr(adam, "\"origin\":\"built-in\""), "  ...\"adam\" is still the built-in");
    free(adam);

    /* another file with lion inside: a different library, the same name */
    char copy[512];
    snprintf(copy, sizeof copy, "%s/lion_copy.so", tmpdir);
    if (copy_file(LION, copy)) {
        expect_load_error(copy, DESCENT_ERR_PLUGIN,
                          sfmt("descent_plugin_load: %s: optimizer 'lion' collides with the one from %s", copy, LION),
                          "a copy of lion.so at another path (collides with the loaded lion)");
        unlink(copy);
    } else {
        CHECK(0, "copy lion.so to %s", copy);
    }

    expect_load_error(DESCENT_TEST_PLUGIN_DIR "/does_not_exist.so", DESCENT_ERR_NOT_FOUND,
                      "descent_plugin_load: no such file: " DESCENT_TEST_PLUGIN_DIR "/does_not_exist.so", "a missing file");

    printf("\n-- invalid descriptors (plugin_invalid.so, case chosen by DESCENT_TEST_INVALID)\n");
#define P FIXTURE("plugin_invalid")
    static const struct { const char *which, *message; } invalid[] = {
        {"null_step", "descent_plugin_load: " P ": optimizer 'nostep' has no step function"},
        {"bad_default", "descent_plugin_load: " P ": optimizer 'baddefault': default of hyperparameter 'lr' = -1 is out "
                        "of range (0, inf)"},
        {"bad_name", "descent_plugin_load: " P ": optimizer name 'Bad-Name' is not [a-z][a-z0-9_]* of at most 31 "
                     "characters"},
        {"no_name", "descent_plugin_load: " P ": an optimizer has no name"},
        {"too_many_states", "descent_plugin_load: " P ": optimizer 'manystates' asks for 9 state buffers; at most 8"},
        {"too_many_hparams", "descent_plugin_load: " P ": optimizer 'manyhparams' has 33 hyperparameters; at most 32"},
        {"empty_range", "descent_plugin_load: " P ": optimizer 'emptyrange': hyperparameter 'lr' has an empty range"},
        {"dup_hparam", "descent_plugin_load: " P ": optimizer 'duphparam': hyperparameter 'lr' appears twice"},
        {"bad_hparam_name", "descent_plugin_load: " P ": optimizer 'badhparam': hyperparameter name '2fast' is not "
                            "[a-z][a-z0-9_]*"},
        {"check_finite", "descent_plugin_load: " P ": optimizer 'checkfinite' declares 'check_finite', a name the host "
                         "reserves"},
        {"no_table", "descent_plugin_load: " P ": optimizer 'notable' has hparam_count 2 but no table"},
        {"null_desc", "descent_plugin_load: " P ": an optimizer descriptor is NULL"},
        {"zero_optimizers", "descent_plugin_load: " P ": declares 0 optimizers; need 1 to 256 and a list"},
        {"dup_optimizer", "descent_plugin_load: " P ": optimizer 'twice' appears twice"},
        {"partial", "descent_plugin_load: " P ": optimizer 'nostep' has no step function"},
        {"refuse", "descent_plugin_load: '" P "' refused to load (its entry point returned NULL)"},
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        setenv("DESCENT_TEST_INVALID", invalid[i].which, 1);
        expect_load_error(P, DESCENT_ERR_PLUGIN, invalid[i].message, sfmt("invalid descriptor: %s", invalid[i].which));
    }
    CHECK(!has_name("partial_ok"), "  ...all or none: the valid 'partial_ok' beside an invalid one is not registered");
    CHECK(!has_name("checkfinite"), "  ...the optimizer that declared 'check_finite' is not registered");

    /* struct sizes smaller than ABI 1.0's: the messages name the host's minimum */
    setenv("DESCENT_TEST_INVALID", "small_hparam", 1);
    expect_load_error(P, DESCENT_ERR_PLUGIN,
                      sfmt("descent_plugin_load: %s: optimizer 'smallhparam': hyperparameter struct_size 8 is smaller "
                           "than ABI 1.0's %zu", P, sizeof(descent_hparam_desc)),
                      "invalid descriptor: small_hparam (struct_size 8)");
    setenv("DESCENT_TEST_INVALID", "small_desc", 1);
    expect_load_error(P, DESCENT_ERR_PLUGIN,
                      sfmt("descent_plugin_load: %s: optimizer descriptor struct_size 8 is smaller than ABI 1.0's %zu", P,
                           offsetof(descent_optimizer_desc, step) + sizeof(void *)),
                      "invalid descriptor: small_desc (struct_size 8)");
    setenv("DESCENT_TEST_INVALID", "small_plugin", 1);
    expect_load_error(P, DESCENT_ERR_PLUGIN,
                      sfmt("descent_plugin_load: %s: descent_plugin struct_size 4 is smaller than ABI 1.0's %zu", P,
                           sizeof(descent_plugin)),
                      "invalid descriptor: small_plugin (struct_size 4)");
    unsetenv("DESCENT_TEST_INVALID");
#undef P
}

/* ---- fixtures: a step that fails -----------------------------------------------------------*/

#define FAILING FIXTURE("plugin_failing")

static void test_failing_step(void) {
    printf("\n-- a plugin step that fails after writing (plugin_failing.so)\n");
    CHECK_STATUS(descent_plugin_load(FAILING), DESCENT_OK, "load plugin_failing.so");
    descent_optimizer *opt = NULL;
    if (descent_optimizer_create("failing", "lr=0.5,fail_at=2", &opt) != DESCENT_OK) {
        CHECK(0, "create failing: %s", descent_last_error());
        return;
    }
    /* s += g; p -= lr*s, with values exact in binary */
    float p[4] = {1, 2, 3, 4}, q[2] = {-1, -2};
    const float g1p[4] = {0.5f, 0.25f, -1, 2}, g1q[2] = {1, 1};
    const float g2p[4] = {0.5f, -0.75f, 1, 0}, g2q[2] = {-2, 0.25f};
    float *params[2] = {p, q};
    const float *grads1[2] = {g1p, g1q}, *grads2[2] = {g2p, g2q};
    const int64_t lengths[2] = {4, 2};
    CHECK_STATUS(descent_optimizer_step(opt, 2, params, grads1, lengths), DESCENT_OK, "step 1");
    float saved_p[4], saved_q[2];
    memcpy(saved_p, p, sizeof p);
    memcpy(saved_q, q, sizeof q);
    CHECK_ERROR(descent_optimizer_step(opt, 2, params, grads2, lengths), DESCENT_ERR_PLUGIN,
                "descent_optimizer_step: optimizer 'failing' (" FAILING ") failed in step: failing: asked to fail at "
                "step 2; parameters and state are unchanged",
                "step 2 fails inside the plugin (the message includes the plugin's text)");
    CHECK(memcmp(p, saved_p, sizeof p) == 0 && memcmp(q, saved_q, sizeof q) == 0,
          "  ...the parameters it had written are restored exactly");
    CHECK(get_value(opt, "step") == 1.0, "  ...the step count is still 1");
    CHECK_STATUS(descent_optimizer_set(opt, "fail_at", 0), DESCENT_OK, "set fail_at = 0 (never)");
    CHECK_STATUS(descent_optimizer_step(opt, 2, params, grads2, lengths), DESCENT_OK, "retry step 2");
    /* s = g1 + g2 (only if the state was restored too); p = p1 - 0.5*s */
    float want_p[4], want_q[2];
    for (int i = 0; i < 4; i++) want_p[i] = saved_p[i] - 0.5f * (g1p[i] + g2p[i]);
    for (int i = 0; i < 2; i++) want_q[i] = saved_q[i] - 0.5f * (g1q[i] + g2q[i]);
    CHECK(memcmp(p, want_p, sizeof p) == 0 && memcmp(q, want_q, sizeof q) == 0,
          "  ...and gives p1 - lr*(g1 + g2): the state was restored too (p = [%g, %g, %g, %g], q = [%g, %g])", p[0],
          p[1], p[2], p[3], q[0], q[1]);

    /* the same without a message */
    CHECK_STATUS(descent_optimizer_set(opt, "fail_at", 3), DESCENT_OK, "set fail_at = 3");
    CHECK_STATUS(descent_optimizer_set(opt, "silent", 1), DESCENT_OK, "set silent = 1");
    memcpy(saved_p, p, sizeof p);
    CHECK_ERROR(descent_optimizer_step(opt, 2, params, grads1, lengths), DESCENT_ERR_PLUGIN,
                "descent_optimizer_step: optimizer 'failing' (" FAILING ") failed in step: it gave no reason; parameters "
                "and state are unchanged",
                "a step that fails without report_error");
    CHECK(memcmp(p, saved_p, sizeof p) == 0, "  ...parameters restored");

    /* prepare() failing */
    CHECK_STATUS(descent_optimizer_set(opt, "silent", 0), DESCENT_OK, "set silent = 0");
    CHECK_STATUS(descent_optimizer_set(opt, "fail_prepare_at", 3), DESCENT_OK, "set fail_prepare_at = 3");
    CHECK_ERROR(descent_optimizer_step(opt, 2, params, grads1, lengths), DESCENT_ERR_PLUGIN,
                "descent_optimizer_step: optimizer 'failing' (" FAILING ") failed in prepare: failing: prepare asked to "
                "fail at step 3; parameters and state are unchanged",
                "prepare() fails");
    CHECK(memcmp(p, saved_p, sizeof p) == 0 && get_value(opt, "step") == 2.0, "  ...parameters and step count unchanged");
    descent_optimizer_free(opt);
}

/* The rollback on the parallel path: three tensors of 50000 on 2 threads, failing in every chunk. */
static void test_failing_parallel(void) {
    printf("\n-- a failing plugin step on the parallel path (3 x 50000, 2 threads)\n");
    enum { N = 50000, T = 3 };
    float *p[T], *tp[T], *g[T], *saved[T];
    for (int k = 0; k < T; k++) {
        p[k] = malloc(N * sizeof(float));
        tp[k] = malloc(N * sizeof(float));
        g[k] = malloc(N * sizeof(float));
        saved[k] = malloc(N * sizeof(float));
        for (int i = 0; i < N; i++) {
            p[k][i] = tp[k][i] = (float)((i * 7 + k) % 101) / 50.0f - 1.0f;
            g[k][i] = (float)((i * 13 + 5 * k) % 31) / 16.0f - 1.0f;
        }
    }
    const int64_t lengths[T] = {N, N, N};
    const float *grads[T] = {g[0], g[1], g[2]};
    descent_optimizer *opt = NULL, *twin = NULL;
    descent_set_num_threads(2);
    if (descent_optimizer_create("failing", "lr=0.01,fail_at=2", &opt) != DESCENT_OK ||
        descent_optimizer_create("failing", "lr=0.01", &twin) != DESCENT_OK) {
        CHECK(0, "create failing: %s", descent_last_error());
        return;
    }
    CHECK_STATUS(descent_optimizer_step(opt, T, p, grads, lengths), DESCENT_OK, "step 1");
    CHECK_STATUS(descent_optimizer_step(twin, T, tp, grads, lengths), DESCENT_OK, "twin step 1");
    for (int k = 0; k < T; k++) memcpy(saved[k], p[k], N * sizeof(float));
    CHECK_ERROR(descent_optimizer_step(opt, T, p, grads, lengths), DESCENT_ERR_PLUGIN,
                "descent_optimizer_step: optimizer 'failing' (" FAILING ") failed in step: failing: asked to fail at "
                "step 2; parameters and state are unchanged",
                "step 2 fails in several chunks at once");
    int same = 1;
    for (int k = 0; k < T; k++) same &= memcmp(saved[k], p[k], N * sizeof(float)) == 0;
    CHECK(same, "  ...all 150000 parameters restored exactly");
    descent_optimizer_set(opt, "fail_at", 0);
    CHECK_STATUS(descent_optimizer_step(opt, T, p, grads, lengths), DESCENT_OK, "retry step 2");
    CHECK_STATUS(descent_optimizer_step(twin, T, tp, grads, lengths), DESCENT_OK, "twin step 2");
    same = 1;
    for (int k = 0; k < T; k++) same &= memcmp(tp[k], p[k], N * sizeof(float)) == 0;
    CHECK(same, "  ...the retry equals a run that never failed, bit for bit (state restored)");
    descent_set_num_threads(0);
    descent_optimizer_free(opt);
    descent_optimizer_free(twin);
    for (int k = 0; k < T; k++) {
        free(p[k]);
        free(tp[k]);
        free(g[k]);
        free(saved[k]);
    }
}

/* A failing FIRST step: the header promises state "exactly as it was", i.e. none, so a first
 * step with another shape must then be accepted. */
static void test_failing_first_step(void) {
    printf("\n-- a plugin step that fails on the very first step\n");
    descent_optimizer *opt = NULL;
    if (descent_optimizer_create("failing", "lr=0.5,fail_at=1", &opt) != DESCENT_OK) {
        CHECK(0, "create failing: %s", descent_last_error());
        return;
    }
    float p[3] = {1, 2, 3};
    const float g[3] = {1, 1, 1};
    float *params[1] = {p};
    const float *grads[1] = {g};
    int64_t lengths[1] = {3};
    CHECK_ERROR(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_ERR_PLUGIN,
                "descent_optimizer_step: optimizer 'failing' (" FAILING ") failed in step: failing: asked to fail at "
                "step 1; parameters and state are unchanged",
                "step 1 fails");
    CHECK(p[0] == 1 && p[1] == 2 && p[2] == 3 && get_value(opt, "step") == 0.0, "  ...params and step count untouched");
    descent_optimizer_set(opt, "fail_at", 0);
    lengths[0] = 2;
    CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_OK,
                 "  ...so no state exists yet and a first step with another shape (2 elements) is accepted");
    descent_optimizer_free(opt);

    /* the same through prepare() */
    if (descent_optimizer_create("failing", "lr=0.5,fail_prepare_at=1", &opt) != DESCENT_OK) return;
    lengths[0] = 3;
    CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_ERR_PLUGIN, "prepare fails at step 1");
    descent_optimizer_set(opt, "fail_prepare_at", 0);
    lengths[0] = 2;
    CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_OK,
                 "  ...and a first step with another shape is accepted");
    descent_optimizer_free(opt);
}

/* ---- a good fixture with newer structs -------------------------------------------------------*/

static void test_probe(void) {
    printf("\n-- plugin_probe.so: ABI 1.5 with larger structs; host L2; the step context\n");
    CHECK_STATUS(descent_plugin_load(FIXTURE("plugin_probe")), DESCENT_OK,
                 "a plugin of a newer minor version (1.5) with larger structs loads");
    CHECK(has_name("probe_sgd") && has_name("probe_ctx"), "both of its optimizers are registered");
    descent_optimizer *opt = NULL;
    if (descent_optimizer_create("probe_ctx", NULL, &opt) == DESCENT_OK) {
        CHECK(get_value(opt, "k") == 1.0 && get_value(opt, "j") == 0.0,
              "hyperparameters read with the plugin's stride: k = 1, j = 0");
        CHECK(get_value(opt, "weight_decay") == 0.0 && get_value(opt, "check_finite") == 1.0,
              "the host's weight_decay (0) and check_finite (1) are there too");
        descent_optimizer_free(opt);
    }
    /* The host's entries follow the plugin's own, weight_decay then check_finite. */
    static const struct { const char *name, *order[4]; } tables[] = {
        {"probe_sgd", {"lr", "weight_decay", "check_finite", NULL}},
        {"probe_ctx", {"k", "j", "weight_decay", "check_finite"}},
    };
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        char *d = describe_string(tables[t].name);
        const char *at = d;
        int in_order = d != NULL, count = 0;
        for (int i = 0; i < 4 && tables[t].order[i] && in_order; i++) {
            at = strstr(at, sfmt("{\"name\":\"%s\"", tables[t].order[i]));
            in_order = at != NULL;
            if (at) at++;
            count++;
        }
        CHECK(in_order && strstr(at, "{\"name\":") == NULL,
              "describe(%s): all %d hyperparameters in order, its own first, then the host's weight_decay and "
              "check_finite",
              tables[t].name, count);
        CHECK(d && strstr(d, "{\"name\":\"check_finite\",\"default\":1,") && strstr(d, "\"provided_by\":\"host\""),
              "describe(%s): check_finite defaults to 1 and is the host's", tables[t].name);
        free(d);
    }
    /* check_finite=0 on a plugin optimizer: the NaN reaches the plugin's step. */
    if (descent_optimizer_create("probe_sgd", "lr=0.5,check_finite=0", &opt) == DESCENT_OK) {
        float p[2] = {1, 2};
        const float g[2] = {NAN, 2};
        float *params[1] = {p};
        const float *grads[1] = {g};
        const int64_t lengths[1] = {2};
        CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_OK,
                     "probe_sgd check_finite=0: a step with a NaN gradient succeeds");
        CHECK(isnan(p[0]) && p[1] == 1.0f && get_value(opt, "step") == 1.0,
              "  ...p = [nan, 1] (got [%g, %g]), step count 1", p[0], p[1]);
        CHECK_STATUS(descent_optimizer_set(opt, "check_finite", 1), DESCENT_OK, "  ...set check_finite = 1");
        p[0] = 1;
        CHECK_ERROR(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_ERR_NUMERIC,
                    "descent_optimizer_step: grads[0] contains NaN at index 0", "  ...then the same step is refused");
        CHECK(p[0] == 1.0f && p[1] == 1.0f && get_value(opt, "step") == 1.0, "  ...params and step count untouched");
        descent_optimizer_free(opt);
    } else {
        CHECK(0, "create probe_sgd check_finite=0: %s", descent_last_error());
    }

    /* probe_sgd declares no weight_decay: the host adds L2, g' = g + wd*p */
    if (descent_optimizer_create("probe_sgd", "lr=0.5,weight_decay=0.5", &opt) == DESCENT_OK) {
        char *d = describe_string("probe_sgd");
        CHECK(d && strstr(d, "\"name\":\"weight_decay\"") && strstr(d, "\"provided_by\":\"host\""),
              "describe(probe_sgd) lists the host's weight_decay");
        free(d);
        float p[2] = {1, 2};
        const float g[2] = {1, -1};
        float *params[1] = {p};
        const float *grads[1] = {g};
        const int64_t lengths[1] = {2};
        CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_OK, "probe_sgd step");
        /* g' = [1 + 0.5, -1 + 1] = [1.5, 0]; p = [1 - 0.75, 2 - 0] */
        CHECK(p[0] == 0.25f && p[1] == 2.0f, "the plugin saw g + wd*p: p = [0.25, 2] (got [%g, %g])", p[0], p[1]);
        descent_optimizer_free(opt);
    }

    /* probe_ctx: p = 100*t + k + j + s/1000 with s the step's own count of calls (state) */
    if (descent_optimizer_create("probe_ctx", "k=2,j=-1.5", &opt) == DESCENT_OK) {
        enum { N = 40000 };   /* > 32768: the parallel path, several chunks */
        float *p = calloc(N, sizeof(float)), *g = calloc(N, sizeof(float));
        float *params[1] = {p};
        const float *grads[1] = {g};
        const int64_t lengths[1] = {N};
        descent_set_num_threads(2);
        for (int t = 1; t <= 3; t++) {
            CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_OK, sfmt("probe_ctx step %d", t));
            float want = (float)(100.0 * t + 0.5) + (float)t / 1000.0f;
            int all = 1;
            for (int i = 0; i < N; i++) all &= p[i] == want;
            CHECK(all, "every element is 100*t + k + j + t/1000 = %.4f: t counts from 1, prepare's scalars arrive, "
                       "the state starts at 0 and persists",
                  (double)want);
        }
        CHECK_STATUS(descent_optimizer_reset(opt), DESCENT_OK, "reset");
        CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_OK, "step after reset");
        CHECK(p[0] == (float)100.5 + 0.001f && p[N - 1] == p[0], "after reset t = 1 and the state is zero again (p = %.4f)",
              (double)p[0]);
        descent_set_num_threads(0);
        free(p);
        free(g);
        descent_optimizer_free(opt);
    }
}

/* ---- folders ---------------------------------------------------------------------------------*/

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }
static int is_so(const struct dirent *e) {
    size_t n = strlen(e->d_name);
    return n > 3 && strcmp(e->d_name + n - 3, ".so") == 0;
}

static void test_load_dir(void) {
    printf("\n-- descent_plugin_load_dir\n");
    CHECK_STATUS(descent_plugin_load_dir(DESCENT_PLUGIN_DIR), DESCENT_OK, "load_dir(examples' plugin folder)");
    CHECK(name_count("lion") == 1, "lion is still registered once");

    /* a scratch folder: a_probe.so (good), b_abi2.so (bad), c_collide.so (never reached) */
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/mixed", tmpdir);
    int ok;
    if (mkdir(dir, 0700) != 0) {
        CHECK(0, "mkdir %s", dir);
        return;
    }
    snprintf(path, sizeof path, "%s/a_probe.so", dir);
    ok = symlink(FIXTURE("plugin_probe"), path) == 0;
    snprintf(path, sizeof path, "%s/b_abi2.so", dir);
    ok &= symlink(FIXTURE("plugin_abi2"), path) == 0;
    snprintf(path, sizeof path, "%s/c_collide.so", dir);
    ok &= symlink(FIXTURE("plugin_collide"), path) == 0;
    snprintf(path, sizeof path, "%s/README.txt", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("not a library, and not *.so: ignored\n", f);
        fclose(f);
    }
    CHECK(ok, "made %s with a_probe.so, b_abi2.so, c_collide.so (symlinks) and README.txt", dir);
    CHECK_ERROR(descent_plugin_load_dir(dir), DESCENT_ERR_PLUGIN,
                sfmt("descent_plugin_load_dir: %s/b_abi2.so: built for plugin ABI 2.0, but this host speaks ABI 1.0", dir),
                "load_dir stops at the first library that fails, in name order, with its error");
    CHECK(has_name("probe_sgd") && has_name("probe_ctx"), "  ...the library before it (a_probe.so) stays loaded");
    CHECK(!has_name("collide_ok") && !has_name("abi2_sgd"), "  ...nothing from it or after it is registered");

    /* an empty folder */
    char empty[300];
    snprintf(empty, sizeof empty, "%s/empty", tmpdir);
    if (mkdir(empty, 0700) == 0) {
        char *before = names_string();
        CHECK_STATUS(descent_plugin_load_dir(empty), DESCENT_OK, "load_dir of an empty folder");
        char *after = names_string();
        CHECK(before && after && strcmp(before, after) == 0, "  ...changes nothing");
        free(before);
        free(after);
        rmdir(empty);
    }

    /* the fixture folder: its first failing library (in name order) decides the result */
    struct dirent **entries = NULL;
    int n = scandir(DESCENT_TEST_PLUGIN_DIR, &entries, is_so, by_name);
    char expected[1024] = "";
    int32_t expected_status = DESCENT_OK;
    unsetenv("DESCENT_TEST_INVALID");
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", DESCENT_TEST_PLUGIN_DIR, entries[i]->d_name);
        if (expected_status == DESCENT_OK) {
            expected_status = descent_plugin_load(path);
            if (expected_status != DESCENT_OK)
                snprintf(expected, sizeof expected, "descent_plugin_load_dir:%s",
                         descent_last_error() + strlen("descent_plugin_load:"));
        }
        free(entries[i]);
    }
    free(entries);
    CHECK(n > 0 && expected_status != DESCENT_OK, "the fixture folder holds %d libraries, some of them bad", n);
    CHECK_ERROR(descent_plugin_load_dir(DESCENT_TEST_PLUGIN_DIR), expected_status, expected,
                "load_dir(fixture folder) fails as its first bad library does");
    CHECK_ERROR(descent_plugin_load_dir(DESCENT_TEST_PLUGIN_DIR "/"), expected_status, expected,
                "a trailing '/' on the folder gives the same paths, so the same message");

    snprintf(path, sizeof path, "%s/a_probe.so", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/b_abi2.so", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/c_collide.so", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/README.txt", dir);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    unsetenv("DESCENT_PLUGIN_PATH");   /* only what this test loads */
    unsetenv("DESCENT_TEST_INVALID");
    printf("test_plugins: the plugin ABI (lion from %s, fixtures from %s)\n", DESCENT_PLUGIN_DIR, DESCENT_TEST_PLUGIN_DIR);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/descent_test_plugins_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_lion_load();
    test_lion_by_hand();
    test_swap();
    test_bad_plugins();
    test_load_dir();
    test_failing_step();
    test_failing_parallel();
    test_failing_first_step();
    test_probe();
    rmdir(tmpdir);
    return check_summary();
}
