/*
 * fuzz_train.h -- one training step on a network a target made (from a spec or a checkpoint),
 * so the fuzzers reach the step with every shape and optimizer state they can build.
 * Include after fuzz_input.h and descent.h.
 */
#ifndef DESCENT_FUZZ_TRAIN_H
#define DESCENT_FUZZ_TRAIN_H

#include <math.h>

/* Trains `net` on two samples of values in [0, 1) (two: training with batch norm refuses a
 * batch of one). The step succeeds with a finite loss or reports non-finite numbers. */
static inline void fuzz_train_two_samples(descent_net *net) {
    int64_t w1 = 0, b1 = 0;   /* W1 is [inputs][width1]; b1 has width1 entries */
    FUZZ_REQUIRE(descent_net_param(net, 0, NULL, NULL, NULL, &w1) == DESCENT_OK, "W1");
    FUZZ_REQUIRE(descent_net_param(net, 1, NULL, NULL, NULL, &b1) == DESCENT_OK && b1 > 0, "b1");
    const int64_t inputs = w1 / b1;
    float *x = calloc((size_t)(2 * inputs), sizeof(float));
    for (int64_t i = 0; i < 2 * inputs; i++) x[i] = (float)(i % 7) / 7.0f;
    int32_t labels[2] = {0, 1};
    float loss = NAN;
    int32_t status = descent_net_train_step(net, x, labels, 2, &loss);
    FUZZ_REQUIRE(status == DESCENT_OK || status == DESCENT_ERR_NUMERIC, "train step: %s (%s)",
                 descent_status_name(status), descent_last_error());
    if (status == DESCENT_OK) FUZZ_REQUIRE(isfinite(loss), "loss %g reported as success", (double)loss);
    free(x);
}

#endif
