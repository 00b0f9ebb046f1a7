/*
 * test_net_in_use.c -- a network handle used by two threads at once: the second thread's call
 * fails with DESCENT_ERR_INVALID_ARGUMENT naming the handle, instead of racing the first
 * (descent.h: one handle, one thread at a time; this is the check that catches a breach).
 *
 * To hold a call in progress for as long as the test needs, the network trains with the
 * fixture optimizer "gate" (tests/c/plugins/plugin_gate.c), whose step waits while the test
 * holds its gate. While one thread is parked inside descent_net_train_step, every other call
 * that reads or changes the network is refused (descent_net_free too, which then frees
 * nothing), the calls that read only what never changes (param_count, param, spec) still
 * work, and nothing the refused calls would have done happens. Once the gate opens, the step
 * finishes normally and every call works again.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "descent.h"

#ifndef DESCENT_TEST_PLUGIN_DIR
#error "define DESCENT_TEST_PLUGIN_DIR: the folder where tests/c/plugins/*.c are built"
#endif
#define GATE DESCENT_TEST_PLUGIN_DIR "/plugin_gate.so"

enum { FEATURES = 4, CLASSES = 2, BATCH = 3 };
static float x[BATCH * FEATURES] = {0.5f, -1, 2, 0.25f, 1, 1, -0.5f, 0, -2, 0.75f, 0, 1};
static int32_t labels[BATCH] = {0, 1, 1};

typedef struct trainer {
    descent_net *net;
    int32_t status;
    float loss;
} trainer;

static void *train(void *arg) {
    trainer *t = arg;
    t->status = descent_net_train_step(t->net, x, labels, BATCH, &t->loss);
    return NULL;
}

/* A refused call: the status and the whole message. */
static void expect_in_use(int32_t status, const char *function, const char *handle) {
    char message[256];
    snprintf(message, sizeof message,
             "%s: net %s is in use by another thread (a handle is used by one thread at a time)", function,
             handle);
    check_error(status, DESCENT_ERR_INVALID_ARGUMENT, message, __FILE__, __LINE__, function);
}

int main(void) {
    CHECK_STATUS(descent_plugin_load(GATE), DESCENT_OK, "load the gate optimizer");
    void *plugin = dlopen(GATE, RTLD_NOW | RTLD_NOLOAD);
    void (*hold)(void) = plugin ? (void (*)(void))dlsym(plugin, "gate_hold") : NULL;
    void (*open_gate)(void) = plugin ? (void (*)(void))dlsym(plugin, "gate_release") : NULL;
    int (*entered)(void) = plugin ? (int (*)(void))dlsym(plugin, "gate_entered") : NULL;
    if (!CHECK(hold && open_gate && entered, "the gate's controls, from the copy the library loaded"))
        return check_summary();

    trainer t = {0};
    CHECK_STATUS(descent_net_create("{\"sizes\":[4,5,2],\"seed\":9}", &t.net), DESCENT_OK, "create a network");
    CHECK_STATUS(descent_net_set_optimizer(t.net, "gate", "lr=0.5"), DESCENT_OK, "train it with gate");
    float *w1 = NULL;
    int64_t length = 0;
    CHECK_STATUS(descent_net_param(t.net, 0, NULL, &w1, NULL, &length), DESCENT_OK, "W1");
    float before[20];
    memcpy(before, w1, sizeof before);
    char handle[32];
    snprintf(handle, sizeof handle, "%p", (void *)t.net);

    /* A thread parks inside a training step. */
    hold();
    pthread_t thread;
    pthread_create(&thread, NULL, train, &t);
    for (int i = 0; i < 30000 && !entered(); i++) nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (!CHECK(entered(), "the other thread is inside descent_net_train_step")) {
        open_gate();
        pthread_join(thread, NULL);
        return check_summary();
    }

    printf("\n-- while another thread is inside a call on the network\n");
    float loss = -1, accuracy = -1, probs[BATCH * CLASSES];
    const float *data = NULL;
    int64_t rows = 0, cols = 0;
    expect_in_use(descent_net_train_step(t.net, x, labels, BATCH, &loss), "descent_net_train_step", handle);
    expect_in_use(descent_net_forward_backward(t.net, x, labels, BATCH, &loss), "descent_net_forward_backward",
                  handle);
    expect_in_use(descent_net_apply_update(t.net), "descent_net_apply_update", handle);
    expect_in_use(descent_net_predict(t.net, x, BATCH, probs), "descent_net_predict", handle);
    expect_in_use(descent_net_evaluate(t.net, x, labels, BATCH, &loss, &accuracy), "descent_net_evaluate", handle);
    expect_in_use(descent_net_set_optimizer(t.net, "sgd", NULL), "descent_net_set_optimizer", handle);
    expect_in_use(descent_net_activations(t.net, 0, &data, &rows, &cols), "descent_net_activations", handle);
    char path[] = "net_in_use.safetensors";
    remove(path);
    expect_in_use(descent_net_save(t.net, path), "descent_net_save", handle);
    CHECK(access(path, F_OK) != 0, "the refused save wrote no file");
    CHECK(loss == -1 && accuracy == -1, "the refused calls wrote no outputs");

    descent_net_free(t.net);
    char freed[256];
    snprintf(freed, sizeof freed,
             "descent_net_free: net %s is in use by another thread (a handle is used by one thread at a time): "
             "not freed", handle);
    CHECK(strcmp(descent_last_error(), freed) == 0, "descent_net_free refuses too: \"%s\"", descent_last_error());

    CHECK(descent_net_param_count(t.net) == 4, "param_count still answers (it reads what never changes)");
    CHECK_STATUS(descent_net_param(t.net, 0, NULL, NULL, NULL, &length), DESCENT_OK, "so does param");
    int64_t needed = 0;
    CHECK_STATUS(descent_net_spec(t.net, NULL, 0, &needed), DESCENT_OK, "and spec");
    CHECK(memcmp(before, w1, sizeof before) == 0, "W1 is unchanged: the parked step has not updated yet");

    printf("\n-- the gate opens\n");
    open_gate();
    pthread_join(thread, NULL);
    CHECK_STATUS(t.status, DESCENT_OK, "the parked step finishes");
    CHECK(t.loss > 0 && t.loss < 10, "with a finite loss (%g)", t.loss);
    CHECK(memcmp(before, w1, sizeof before) != 0, "and updates W1");
    CHECK_STATUS(descent_net_predict(t.net, x, BATCH, probs), DESCENT_OK, "predict works again");
    CHECK_STATUS(descent_net_set_optimizer(t.net, "sgd", NULL), DESCENT_OK, "set_optimizer works again");
    CHECK_STATUS(descent_net_train_step(t.net, x, labels, BATCH, &loss), DESCENT_OK, "train_step works again");
    CHECK_STATUS(descent_net_save(t.net, path), DESCENT_OK, "save works again");
    remove(path);
    /* free sets no message when it frees: leave a known one, and see that it stays. */
    CHECK_STATUS(descent_net_apply_update(t.net), DESCENT_ERR_INVALID_ARGUMENT, "(a known last error)");
    char known[256];
    snprintf(known, sizeof known, "%s", descent_last_error());
    descent_net_free(t.net);
    CHECK(strcmp(descent_last_error(), known) == 0, "free works again (no \"not freed\")");
    return check_summary();
}
