/*
 * test_net_shapes.c -- descent_net_param_shape: the shape of every parameter as the library
 * states it (so bindings need not guess it from the name), its product equal to
 * descent_net_param's length, and every misuse refused with its exact message.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "descent.h"

/* 5 inputs, hidden layers of 4 and 3 with batch norm, 2 classes: W1 b1 gamma1 beta1 W2 b2
 * gamma2 beta2 W3 b3. */
#define SPEC "{\"sizes\":[5,4,3,2],\"batchnorm\":true,\"seed\":3}"

static void test_every_shape(descent_net *net) {
    static const struct { const char *name; int32_t rank; int64_t dims[2]; } want[] = {
        {"W1", 2, {5, 4}}, {"b1", 1, {4}}, {"gamma1", 1, {4}}, {"beta1", 1, {4}},
        {"W2", 2, {4, 3}}, {"b2", 1, {3}}, {"gamma2", 1, {3}}, {"beta2", 1, {3}},
        {"W3", 2, {3, 2}}, {"b3", 1, {2}},
    };
    const int64_t count = descent_net_param_count(net);
    CHECK(count == (int64_t)(sizeof want / sizeof want[0]), "%lld parameters", (long long)count);
    for (int64_t i = 0; i < count && i < (int64_t)(sizeof want / sizeof want[0]); i++) {
        const char *name = NULL;
        int64_t length = 0, dims[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
        int32_t rank = -1;
        CHECK_STATUS(descent_net_param(net, i, &name, NULL, NULL, &length), DESCENT_OK, "descent_net_param");
        CHECK_STATUS(descent_net_param_shape(net, i, &rank, dims, 8), DESCENT_OK, "descent_net_param_shape");
        CHECK(name && strcmp(name, want[i].name) == 0, "parameter %lld is %s", (long long)i, want[i].name);
        CHECK(rank == want[i].rank, "%s has rank %d (got %d)", want[i].name, want[i].rank, rank);
        int64_t product = 1;
        for (int32_t d = 0; d < rank && d < 2; d++) {
            CHECK(dims[d] == want[i].dims[d], "%s dims[%d] = %lld (got %lld)", want[i].name, d,
                  (long long)want[i].dims[d], (long long)dims[d]);
            product *= dims[d];
        }
        CHECK(product == length, "%s: the dims' product %lld equals its length %lld", want[i].name,
              (long long)product, (long long)length);
        CHECK(dims[rank] == -1, "%s: nothing written past dims[rank - 1]", want[i].name);
    }
}

static void test_rank_only_and_misuse(descent_net *net) {
    int32_t rank = -1;
    int64_t dims[2] = {-1, -1};
    CHECK_STATUS(descent_net_param_shape(net, 0, &rank, NULL, 0), DESCENT_OK, "rank only");
    CHECK(rank == 2, "W1's rank alone: 2 (got %d)", rank);

    rank = -1;
    CHECK_ERROR(descent_net_param_shape(net, 0, &rank, dims, 1), DESCENT_ERR_BUFFER_TOO_SMALL,
                "descent_net_param_shape: cap is 1 but parameter 0 has rank 2", "cap below the rank");
    CHECK(rank == 2 && dims[0] == -1, "a short buffer: rank set, dims untouched");
    CHECK_ERROR(descent_net_param_shape(NULL, 0, &rank, dims, 2), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_shape: net is NULL", "NULL net");
    CHECK_ERROR(descent_net_param_shape(net, 0, NULL, dims, 2), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_shape: rank is NULL", "NULL rank");
    CHECK_ERROR(descent_net_param_shape(net, 10, &rank, dims, 2), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_shape: index is 10: must be in [0, 10)", "index past the end");
    CHECK_ERROR(descent_net_param_shape(net, -1, &rank, dims, 2), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_shape: index is -1: must be in [0, 10)", "negative index");
    CHECK_ERROR(descent_net_param_shape(net, 0, &rank, dims, -1), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_shape: cap is -1: must be >= 0", "negative cap");
    CHECK_ERROR(descent_net_param_shape(net, 0, &rank, NULL, 2), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_shape: dims is NULL but cap is 2", "NULL dims with a cap");
}

int main(void) {
    descent_net *net = NULL;
    if (descent_net_create(SPEC, &net) != DESCENT_OK) {
        printf("FAIL descent_net_create: %s\n", descent_last_error());
        return 1;
    }
    test_every_shape(net);
    test_rank_only_and_misuse(net);
    descent_net_free(net);
    return check_summary();
}
