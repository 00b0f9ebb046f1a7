/*
 * allreduce_thread.c -- a data-parallel network's communication thread: the caller's all-reduce
 * (descent_net_set_allreduce) run beside the backward pass, one layer's gradients at a time.
 *
 * Why a thread: the backward pass finishes the gradients layer by layer, from the last layer to
 * the first. Summing layer l's over the processes while layers l-1 .. 1 still compute hides that
 * reduction behind their work. MPI collectives block, so the calls go to a thread of their own.
 *
 * Rules that keep every process in step:
 *  - one queue, first in first out: the calls run in the order they were queued, the same order
 *    on every process (the pass queues them at the same points everywhere);
 *  - never two calls at once: a direct call (dk_allreduce_call, for sums the pass needs before it
 *    can go on) first waits until the queue is empty, then runs on the caller's thread. So the
 *    hook is called from two threads, never concurrently: MPI_THREAD_SERIALIZED is enough;
 *  - every queued call is made, even after one failed: a process that skipped one would leave
 *    the others waiting in it. The first failure is reported by the next wait.
 */
#include <pthread.h>
#include <stdlib.h>

#include "descent_kernels.h"

/* Calls in flight at most; a longer backward pass waits for room (a network has one entry per
 * layer with parameters, so this is reached only by very deep networks). */
enum { QUEUE_SIZE = 64 };

struct dk_allreduce_thread {
    dk_allreduce_fn allreduce;
    void *context;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t queued;    /* a call was queued, or the thread must stop */
    pthread_cond_t finished;  /* a call finished */
    struct { float *data; int64_t count; } queue[QUEUE_SIZE];
    /* Calls ever queued and ever finished: the next to run is queue[done % QUEUE_SIZE]. */
    int64_t submitted, done;
    /* The first non-zero return since the last wait, else 0. */
    int32_t failure;
    int stopping;
};

static void *run_queue(void *argument) {
    dk_allreduce_thread *t = argument;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (t->done == t->submitted && !t->stopping) pthread_cond_wait(&t->queued, &t->lock);
        if (t->done == t->submitted) break;   /* stopping, and nothing left to run */
        const int64_t slot = t->done % QUEUE_SIZE;
        float *data = t->queue[slot].data;
        const int64_t count = t->queue[slot].count;
        pthread_mutex_unlock(&t->lock);
        const int32_t rc = t->allreduce(t->context, data, count);
        pthread_mutex_lock(&t->lock);
        if (rc != 0 && t->failure == 0) t->failure = rc;
        t->done++;
        pthread_cond_broadcast(&t->finished);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

dk_allreduce_thread *dk_allreduce_thread_start(dk_allreduce_fn allreduce, void *context) {
    dk_allreduce_thread *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->allreduce = allreduce;
    t->context = context;
    if (pthread_mutex_init(&t->lock, NULL) != 0) goto no_lock;
    if (pthread_cond_init(&t->queued, NULL) != 0) goto no_queued;
    if (pthread_cond_init(&t->finished, NULL) != 0) goto no_finished;
    if (pthread_create(&t->thread, NULL, run_queue, t) != 0) goto no_thread;
    return t;
no_thread:
    pthread_cond_destroy(&t->finished);
no_finished:
    pthread_cond_destroy(&t->queued);
no_queued:
    pthread_mutex_destroy(&t->lock);
no_lock:
    free(t);
    return NULL;
}

void dk_allreduce_thread_stop(dk_allreduce_thread *t) {
    if (!t) return;
    pthread_mutex_lock(&t->lock);
    t->stopping = 1;
    pthread_cond_signal(&t->queued);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);   /* it runs what is still queued first */
    pthread_cond_destroy(&t->finished);
    pthread_cond_destroy(&t->queued);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void dk_allreduce_submit(dk_allreduce_thread *t, float *data, int64_t count) {
    pthread_mutex_lock(&t->lock);
    while (t->submitted - t->done == QUEUE_SIZE) pthread_cond_wait(&t->finished, &t->lock);
    t->queue[t->submitted % QUEUE_SIZE].data = data;
    t->queue[t->submitted % QUEUE_SIZE].count = count;
    t->submitted++;
    pthread_cond_signal(&t->queued);
    pthread_mutex_unlock(&t->lock);
}

int32_t dk_allreduce_wait(dk_allreduce_thread *t) {
    pthread_mutex_lock(&t->lock);
    while (t->done != t->submitted) pthread_cond_wait(&t->finished, &t->lock);
    const int32_t failure = t->failure;
    t->failure = 0;
    pthread_mutex_unlock(&t->lock);
    return failure;
}

int32_t dk_allreduce_call(dk_allreduce_thread *t, float *data, int64_t count) {
    const int32_t earlier = dk_allreduce_wait(t);
    const int32_t rc = t->allreduce(t->context, data, count);
    return earlier != 0 ? earlier : rc;
}
