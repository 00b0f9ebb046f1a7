/*
 * fuzz_checkpoint.c -- libFuzzer target for descent_net_load: the input is the checkpoint file
 * (a memfd passed as /proc/self/fd/N).
 *
 * Checked on every input (a violation aborts): a failure leaves *out NULL and its message
 * names the function and the path; a network that loads has finite parameters (all of them are
 * read, so ASan checks their sizes), recreates from its own spec, and a small one takes a
 * training step with the restored optimizer, which succeeds or reports non-finite numbers.
 */
#include "fuzz_input.h"   /* first: it defines _GNU_SOURCE */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "descent.h"
#include "fuzz_train.h"

enum { TRAIN_LIMIT = 1 << 16 };

static void use(descent_net *net) {
    int64_t n = descent_net_param_count(net), total = 0;
    FUZZ_REQUIRE(n >= 2, "param count %lld", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        const char *name = NULL;
        float *values = NULL;
        int64_t length = 0;
        FUZZ_REQUIRE(descent_net_param(net, i, &name, &values, NULL, &length) == DESCENT_OK, "param");
        for (int64_t j = 0; j < length; j++) FUZZ_REQUIRE(isfinite(values[j]), "%s[%lld] not finite", name, (long long)j);
        total += length;
    }
    int64_t needed = 0;
    FUZZ_REQUIRE(descent_net_spec(net, NULL, 0, &needed) == DESCENT_OK, "measure spec");
    char *spec = malloc((size_t)needed);
    FUZZ_REQUIRE(descent_net_spec(net, spec, needed, &needed) == DESCENT_OK, "spec");
    descent_net *again = NULL;
    FUZZ_REQUIRE(descent_net_create(spec, &again) == DESCENT_OK, "own spec %s refused: %s", spec, descent_last_error());
    descent_net_free(again);
    free(spec);
    if (total > TRAIN_LIMIT) return;

    fuzz_train_two_samples(net);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[40];
    int fd = fuzz_memfile(data, size, path);
    descent_net *net = (descent_net *)1;
    int32_t status = descent_net_load(path, &net);
    if (status != DESCENT_OK) {
        const char *message = descent_last_error();
        FUZZ_REQUIRE(net == NULL, "out not cleared on error");
        FUZZ_REQUIRE(fuzz_error_names(message, "descent_net_load"), "error \"%s\"", message);
        FUZZ_REQUIRE(strstr(message, path) != NULL, "error \"%s\" does not name %s", message, path);
    } else {
        use(net);
        descent_net_free(net);
    }
    close(fd);
    return 0;
}
