/* A program built out of tree against an installed Descent (tests/install/run.sh builds it
 * with pkg-config and with CMake's find_package). It uses only the installed header and
 * library: one SGD step on one tensor, checked against p - lr * g.
 *
 *   consumer [PLUGIN_DIR]   with a folder: also loads the plugins in it and lists the optimizers
 *   consumer --find NAME    creates optimizer NAME without loading any plugin itself (the library
 *                           searches its plugin folders); exit 0 and the folders when found, else
 *                           exit 3 and the library's message on stdout */
#include <descent.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, int32_t status)
{
    fprintf(stderr, "consumer: %s failed: %s (%s)\n", what, descent_status_name(status), descent_last_error());
    return 1;
}

/* The optimizer `name`, found by the library alone. */
static int find(const char *name)
{
    descent_optimizer *opt = NULL;
    int32_t status = descent_optimizer_create(name, NULL, &opt);
    if (status != DESCENT_OK) {
        printf("%s\n", descent_last_error());
        return 3;
    }
    descent_optimizer_free(opt);
    char folders[4096];
    int64_t needed = 0;
    status = descent_plugin_search_path(folders, (int64_t)sizeof folders, &needed);
    if (status != DESCENT_OK) return fail("descent_plugin_search_path", status);
    printf("found %s; plugin folders searched: %s\n", name, folders);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--find") == 0) return find(argv[2]);

    descent_optimizer *opt = NULL;
    int32_t status = descent_optimizer_create("sgd", "lr=0.1", &opt);
    if (status != DESCENT_OK) return fail("descent_optimizer_create(\"sgd\", \"lr=0.1\")", status);

    float param[3] = {1.0f, -2.0f, 0.5f};
    const float grad[3] = {0.5f, 1.0f, -4.0f};
    float *params[1] = {param};
    const float *grads[1] = {grad};
    const int64_t lengths[1] = {3};
    status = descent_optimizer_step(opt, 1, params, grads, lengths);
    if (status != DESCENT_OK) return fail("descent_optimizer_step", status);
    descent_optimizer_free(opt);

    const float expected[3] = {0.95f, -2.1f, 0.9f};
    for (int i = 0; i < 3; i++) {
        if (fabsf(param[i] - expected[i]) > 1e-6f) {
            fprintf(stderr, "consumer: param[%d] = %.9g, expected %.9g\n", i, param[i], expected[i]);
            return 1;
        }
    }

    if (argc > 1) {
        status = descent_plugin_load_dir(argv[1]);
        if (status != DESCENT_OK) return fail("descent_plugin_load_dir", status);
        char names[1024];
        int64_t needed = 0;
        status = descent_optimizer_names(names, (int64_t)sizeof names, &needed);
        if (status != DESCENT_OK) return fail("descent_optimizer_names", status);
        printf("optimizers with the plugins of %s: %s\n", argv[1], names);
    }

    printf("descent %s: sgd step ok\n", descent_version());
    return 0;
}
