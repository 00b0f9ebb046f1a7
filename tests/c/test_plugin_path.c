/*
 * test_plugin_path.c -- DESCENT_PLUGIN_PATH: colon-separated folders whose *.so libraries are
 * loaded the first time any optimizer name is looked up.
 *
 * A separate executable, because the variable is read once per process: it is set here before
 * the first call into the library. The path also holds a folder that does not exist and empty
 * entries, which must be skipped (a warning on stderr at most), not fail the scan.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "descent.h"

#ifndef DESCENT_PLUGIN_DIR
#error "define DESCENT_PLUGIN_DIR: the folder where examples/plugins/*.c are built (lion.so)"
#endif

int main(void) {
    /* before any other library call */
    const char *path = "/nonexistent/descent/plugins::" DESCENT_PLUGIN_DIR ":";
    setenv("DESCENT_PLUGIN_PATH", path, 1);
    printf("test_plugin_path: DESCENT_PLUGIN_PATH=%s\n\n", path);

    char *names = names_string();
    CHECK(names != NULL, "descent_optimizer_names works");
    CHECK(names && list_has(names, "lion"), "\"lion\" is registered without any descent_plugin_load call (names: %s)",
          names ? names : "(NULL)");
    CHECK(names && strncmp(names, "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw,", 49) == 0,
          "the built-ins still come first");
    CHECK(names && list_count(names, "lion") == 1, "\"lion\" appears once");
    free(names);

    descent_optimizer *opt = NULL;
    CHECK_STATUS(descent_optimizer_create("lion", "lr=0.5", &opt), DESCENT_OK, "create(\"lion\") by name");
    if (opt) {
        float p[2] = {1.0f, -1.0f};
        const float g[2] = {2.0f, -3.0f};
        float *params[1] = {p};
        const float *grads[1] = {g};
        const int64_t lengths[1] = {2};
        CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_OK, "one lion step");
        /* c = 0.1*g: signs [+, -]; p -= 0.5*sign(c) */
        CHECK(p[0] == 0.5f && p[1] == -0.5f, "p = [0.5, -0.5] (got [%g, %g])", p[0], p[1]);
        descent_optimizer_free(opt);
    }
    char *d = describe_string("lion");
    CHECK(d && strstr(d, "\"origin\":\"" DESCENT_PLUGIN_DIR "/lion.so\""), "its origin is %s/lion.so", DESCENT_PLUGIN_DIR);
    free(d);

    CHECK_STATUS(descent_plugin_load(DESCENT_PLUGIN_DIR "/lion.so"), DESCENT_OK,
                 "an explicit load of the same library afterwards is a no-op");
    names = names_string();
    CHECK(names && list_count(names, "lion") == 1, "\"lion\" still appears once");
    free(names);
    return check_summary();
}
