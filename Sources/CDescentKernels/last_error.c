/* last_error.c -- the thread-local text behind descent_last_error(). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descent_kernels.h"

/* One buffer per thread, grown on demand (a message can list every optimizer name) and freed
 * when the thread exits. */
typedef struct error_buffer {
    size_t capacity;
    char text[];
} error_buffer;

static pthread_key_t buffer_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void make_key(void) { pthread_key_create(&buffer_key, free); }

void dk_error_set(const char *message) {
    pthread_once(&key_once, make_key);
    if (!message) message = "";
    size_t need = strlen(message) + 1;
    error_buffer *buffer = pthread_getspecific(buffer_key);
    if (!buffer || buffer->capacity < need) {
        error_buffer *grown = realloc(buffer, sizeof *grown + need);
        if (!grown) {   /* keep the old buffer and say what we can */
            static const char oom[] = "out of memory while recording an error message";
            if (buffer && buffer->capacity >= sizeof oom) memcpy(buffer->text, oom, sizeof oom);
            return;
        }
        grown->capacity = need;
        buffer = grown;
        pthread_setspecific(buffer_key, buffer);
    }
    memcpy(buffer->text, message, need);
}

const char *dk_error_get(void) {
    pthread_once(&key_once, make_key);
    error_buffer *buffer = pthread_getspecific(buffer_key);
    return buffer ? buffer->text : "";
}

void dk_write_stderr(const char *line) {
    fputs(line, stderr);
    fputc('\n', stderr);
}
