/*
 * test_net_arena.c -- descent_net_arena and descent_net_param_offset: a network's parameters
 * live in one 64-byte-aligned arena and its gradients in a second one of the same layout, each
 * tensor on a 64-byte boundary in layer order, the padding zero; the arena pointer plus a
 * tensor's offset is descent_net_param's pointer; gradients written through the arena are the
 * ones descent_net_apply_update uses; misuse is refused with exact messages.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "descent.h"

/* 5 inputs, hidden layers of 4 and 3 with batch norm, 2 classes. */
#define SPEC "{\"sizes\":[5,4,3,2],\"batchnorm\":true,\"seed\":3}"
#define COUNT 10

/* Each tensor rounded up to 16 floats (64 bytes): W1 20 -> 32, the vectors of 4 and 3 -> 16,
 * W2 12 -> 16, W3 6 -> 16, b3 2 -> 16. */
static const struct { const char *name; int64_t offset, length; } want[COUNT] = {
    {"W1", 0, 20},    {"b1", 32, 4},      {"gamma1", 48, 4}, {"beta1", 64, 4}, {"W2", 80, 12},
    {"b2", 96, 3},    {"gamma2", 112, 3}, {"beta2", 128, 3}, {"W3", 144, 6},   {"b3", 160, 2},
};
#define ARENA_LENGTH 176

/* Whether every float of `arena` outside the tensors is +0.0 (bit pattern 0). */
static int padding_is_zero(const float *arena) {
    int64_t at = 0;
    for (int i = 0; i <= COUNT; i++) {
        int64_t end = i < COUNT ? want[i].offset : ARENA_LENGTH;
        for (; at < end; at++) {
            uint32_t bits;
            memcpy(&bits, &arena[at], sizeof bits);
            if (bits != 0) return 0;
        }
        if (i < COUNT) at = want[i].offset + want[i].length;
    }
    return 1;
}

static void test_layout(descent_net *net, float *params, float *grads, int64_t length) {
    CHECK(length == ARENA_LENGTH, "the arenas hold %d floats, padding included (got %lld)", ARENA_LENGTH,
          (long long)length);
    CHECK((uintptr_t)params % 64 == 0 && (uintptr_t)grads % 64 == 0, "both arenas are 64-byte aligned");
    CHECK(params + length <= grads || grads + length <= params, "the two arenas do not overlap");
    CHECK(descent_net_param_count(net) == COUNT, "%d parameters", COUNT);
    int64_t end = 0;
    for (int64_t i = 0; i < COUNT; i++) {
        const char *name = NULL;
        float *data = NULL, *grad = NULL;
        int64_t offset = -1, count = -1;
        CHECK_STATUS(descent_net_param(net, i, &name, &data, &grad, &count), DESCENT_OK, "descent_net_param");
        CHECK_STATUS(descent_net_param_offset(net, i, &offset), DESCENT_OK, "descent_net_param_offset");
        CHECK(name && strcmp(name, want[i].name) == 0 && count == want[i].length,
              "parameter %lld is %s, %lld floats", (long long)i, want[i].name, (long long)want[i].length);
        CHECK(offset == want[i].offset, "%s starts at float %lld (got %lld)", want[i].name,
              (long long)want[i].offset, (long long)offset);
        CHECK(offset % 16 == 0 && (uintptr_t)(params + offset) % 64 == 0, "%s starts on a 64-byte boundary",
              want[i].name);
        CHECK(offset >= end, "%s starts after the previous tensor ends (layer order, no overlap)", want[i].name);
        CHECK(params + offset == data && grads + offset == grad,
              "%s: arena + offset is descent_net_param's data and grad pointers", want[i].name);
        end = offset + count;
    }
    CHECK(end <= length, "the last tensor ends inside the arena");
    CHECK(padding_is_zero(params) && padding_is_zero(grads), "the padding of both arenas is zero");
}

static void test_gradients_through_the_arena(descent_net *net, float *params, float *grads, int64_t length) {
    float x[3 * 5];
    int32_t y[3] = {0, 1, 1};
    for (int i = 0; i < 3 * 5; i++) x[i] = (float)((i * 7) % 11) / 11.0f - 0.4f;
    static float before[ARENA_LENGTH];
    CHECK_STATUS(descent_net_set_optimizer(net, "sgd", "lr=0.1"), DESCENT_OK, "sgd, lr 0.1");

    /* Zero gradients: sgd leaves every parameter as it was. */
    CHECK_STATUS(descent_net_forward_backward(net, x, y, 3, NULL), DESCENT_OK, "forward_backward");
    int nonzero = 0;
    for (int i = 0; i < COUNT; i++)
        for (int64_t k = 0; k < want[i].length; k++) nonzero += grads[want[i].offset + k] != 0.0f;
    CHECK(nonzero > 0, "the backward pass wrote gradients into the arena (%d nonzero)", nonzero);
    CHECK(padding_is_zero(grads), "the backward pass left the gradient padding zero");
    memset(grads, 0, (size_t)length * sizeof(float));
    memcpy(before, params, sizeof before);
    CHECK_STATUS(descent_net_apply_update(net), DESCENT_OK, "apply_update on zeroed gradients");
    CHECK(memcmp(before, params, sizeof before) == 0, "no parameter changed");

    /* Gradients of 1 (padding included, which must be ignored): each parameter drops by lr. */
    CHECK_STATUS(descent_net_forward_backward(net, x, y, 3, NULL), DESCENT_OK, "forward_backward again");
    for (int64_t k = 0; k < length; k++) grads[k] = 1.0f;
    memcpy(before, params, sizeof before);
    CHECK_STATUS(descent_net_apply_update(net), DESCENT_OK, "apply_update on gradients of 1");
    int exact = 0, total = 0;
    for (int i = 0; i < COUNT; i++)
        for (int64_t k = 0; k < want[i].length; k++, total++) {
            int64_t at = want[i].offset + k;
            exact += params[at] == before[at] - 0.1f;
        }
    CHECK(exact == total, "every parameter is its old value - 0.1f, rounded as float (%d of %d)", exact, total);
    CHECK(padding_is_zero(params), "the parameter padding is still zero (the gradients' padding was never read)");
}

static void test_misuse(descent_net *net) {
    float *params = (float *)1, *grads = (float *)1;
    int64_t length = -1, offset = -1;
    CHECK_ERROR(descent_net_arena(NULL, &params, &grads, &length), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_arena: net is NULL", "descent_net_arena: NULL net");
    CHECK(params == (float *)1 && grads == (float *)1 && length == -1, "a refused call writes no output");
    CHECK_STATUS(descent_net_arena(net, NULL, NULL, &length), DESCENT_OK, "descent_net_arena: outputs may be NULL");
    CHECK(length == ARENA_LENGTH, "the length alone");
    CHECK_ERROR(descent_net_param_offset(NULL, 0, &offset), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_offset: net is NULL", "descent_net_param_offset: NULL net");
    CHECK_ERROR(descent_net_param_offset(net, 0, NULL), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_offset: offset is NULL", "descent_net_param_offset: NULL offset");
    CHECK_ERROR(descent_net_param_offset(net, COUNT, &offset), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_offset: index is 10: must be in [0, 10)", "index past the end");
    CHECK_ERROR(descent_net_param_offset(net, -1, &offset), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_param_offset: index is -1: must be in [0, 10)", "negative index");
    CHECK(offset == -1, "a refused call leaves *offset alone");
}

int main(void) {
    descent_net *net = NULL;
    if (!CHECK_STATUS(descent_net_create(SPEC, &net), DESCENT_OK, "create " SPEC)) return check_summary();
    float *params = NULL, *grads = NULL;
    int64_t length = 0;
    CHECK_STATUS(descent_net_arena(net, &params, &grads, &length), DESCENT_OK, "descent_net_arena");
    if (CHECK(params && grads, "both arenas are there")) {
        test_layout(net, params, grads, length);
        test_gradients_through_the_arena(net, params, grads, length);
    }
    test_misuse(net);
    descent_net_free(net);
    return check_summary();
}
