/*
 * fuzz_spec.c -- libFuzzer target for descent_net_create: the input is the JSON spec text.
 *
 * Checked on every input (a violation aborts): a failure leaves *out NULL and names the
 * function in descent_last_error(); a network that is created reports its spec, and that spec
 * creates an equal network again (same spec text, parameter names, lengths and initial values); a small
 * one also takes a training step, which succeeds or reports non-finite numbers (an init std such
 * as 1e30 makes the loss overflow), nothing else.
 */
#include "fuzz_input.h"   /* first: it defines _GNU_SOURCE */

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "descent.h"
#include "fuzz_train.h"

/* Networks up to this many parameters also train one step (keeps an execution fast). */
enum { TRAIN_LIMIT = 1 << 16 };

/* Specs that could describe more than BUILD_LIMIT weights are not built. A spec may rightly
 * ask for gigabytes ({"sizes":[16777216,16777216]}); allocating and initialising that under
 * ASan takes minutes and is not what this target is for (hostile sizes are tested under a
 * memory limit elsewhere). The bound comes from the text without parsing it: any number in
 * 1..2^24 may be a size, so (how many there are) x (the largest)^2 bounds the weights;
 * numbers outside that range are refused by validation before anything is allocated, so
 * they are still fuzzed. */
#define BUILD_LIMIT 4194304.0

static int could_be_large(const char *text) {
    double largest = 0, count = 0;
    for (const char *p = text; *p; p++) {
        int starts = (isdigit((unsigned char)*p) || *p == '-' || *p == '.') &&
                     (p == text || !strchr("0123456789.eE+-", p[-1]));
        if (!starts) continue;
        double x = strtod(p, NULL);
        if (x >= 1 && x <= 16777216) {
            count += 1;
            if (x > largest) largest = x;
        }
    }
    return count * largest * largest > BUILD_LIMIT;
}

static char *spec_of(descent_net *net) {
    int64_t needed = 0;
    FUZZ_REQUIRE(descent_net_spec(net, NULL, 0, &needed) == DESCENT_OK && needed > 0, "measure spec");
    char *text = malloc((size_t)needed);
    FUZZ_REQUIRE(descent_net_spec(net, text, needed, &needed) == DESCENT_OK, "write spec");
    FUZZ_REQUIRE(strlen(text) + 1 == (size_t)needed, "spec length");
    return text;
}

static void train_once(descent_net *net) {
    int64_t total = 0, n = descent_net_param_count(net);
    for (int64_t i = 0; i < n; i++) {
        int64_t length = 0;
        FUZZ_REQUIRE(descent_net_param(net, i, NULL, NULL, NULL, &length) == DESCENT_OK, "param %lld", (long long)i);
        total += length;
    }
    if (total > TRAIN_LIMIT) return;
    fuzz_train_two_samples(net);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = malloc(size + 1);
    memcpy(json, data, size);
    json[size] = '\0';
    if (could_be_large(json)) {
        free(json);
        return -1;   /* not added to the corpus */
    }
    descent_net *net = (descent_net *)1;
    int32_t status = descent_net_create(json, &net);
    if (status != DESCENT_OK) {
        FUZZ_REQUIRE(net == NULL, "out not cleared on error");
        FUZZ_REQUIRE(fuzz_error_names(descent_last_error(), "descent_net_create"), "error \"%s\"", descent_last_error());
    } else {
        char *spec = spec_of(net);
        descent_net *again = NULL;
        FUZZ_REQUIRE(descent_net_create(spec, &again) == DESCENT_OK, "own spec %s refused: %s", spec, descent_last_error());
        char *spec2 = spec_of(again);
        FUZZ_REQUIRE(strcmp(spec, spec2) == 0, "spec %s became %s", spec, spec2);
        int64_t n = descent_net_param_count(net);
        FUZZ_REQUIRE(n >= 2 && n == descent_net_param_count(again), "param counts");
        for (int64_t i = 0; i < n; i++) {
            const char *a = NULL, *b = NULL;
            float *va = NULL, *vb = NULL;
            int64_t la = 0, lb = 0;
            descent_net_param(net, i, &a, &va, NULL, &la);
            descent_net_param(again, i, &b, &vb, NULL, &lb);
            FUZZ_REQUIRE(strcmp(a, b) == 0 && la == lb && la > 0, "param %lld differs", (long long)i);
            /* The seed fixes the initial values: bit for bit the same. */
            FUZZ_REQUIRE(memcmp(va, vb, (size_t)la * sizeof(float)) == 0, "initial %s differs", a);
        }
        train_once(net);
        free(spec);
        free(spec2);
        descent_net_free(again);
        descent_net_free(net);
    }
    free(json);
    return 0;
}
