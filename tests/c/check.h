/*
 * check.h -- the few assertions the C tests share.
 *
 * Every check prints one line ("ok   ..." or "FAIL ...") saying what it checked, so a ctest log
 * reads as a list of facts. A failing check does not stop the test: the rest still run, and
 * check_summary() prints "N passed, M failed" and gives the exit code (0 only when M == 0).
 *
 *   CHECK(cond, "what, printf-style", ...)            any condition
 *   CHECK_STATUS(call, DESCENT_OK, "what")            a status code, with last_error on a mismatch
 *   CHECK_ERROR(call, DESCENT_ERR_X, "message", "what")
 *                                                     status AND the exact descent_last_error() text
 *   CHECK_NEAR(got, want, tol, "what")                |got - want| <= tol
 *
 * Header-only: everything is static inline so each test compiles it without warnings, whatever
 * it uses.
 */
#ifndef DESCENT_TEST_CHECK_H
#define DESCENT_TEST_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descent.h"

/* Counters: one pair per test executable (each test is a single translation unit). */
static inline int *check_counter(int failed) {
    static int passed_count, failed_count;
    return failed ? &failed_count : &passed_count;
}

/* Records one result and prints its line. Returns cond so callers can branch on it. */
static inline int check_report(int cond, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs(cond ? "ok   " : "FAIL ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    if (!cond) printf("   [%s:%d]", file, line);
    fputc('\n', stdout);
    fflush(stdout);
    ++*check_counter(!cond);
    return cond;
}

#define CHECK(cond, ...) check_report(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* A status check. On a mismatch it also prints both status names and the library's message. */
static inline int check_status(int32_t got, int32_t want, const char *file, int line,
                               const char *what) {
    int ok = got == want;
    check_report(ok, file, line, "%s -> %s", what, descent_status_name(want));
    if (!ok)
        printf("       got %s (%d), last error: \"%s\"\n", descent_status_name(got), (int)got,
               descent_last_error());
    return ok;
}

#define CHECK_STATUS(call, want, what) check_status((call), (want), __FILE__, __LINE__, (what))

/* A failing call: the status, and descent_last_error() equal to the whole expected message. */
static inline int check_error(int32_t got, int32_t want, const char *message, const char *file,
                              int line, const char *what) {
    const char *last = descent_last_error();
    int ok = got == want && last && strcmp(last, message) == 0;
    check_report(ok, file, line, "%s -> %s \"%s\"", what, descent_status_name(want), message);
    if (!ok)
        printf("       got %s (%d) \"%s\"\n", descent_status_name(got), (int)got, last ? last : "(NULL)");
    return ok;
}

#define CHECK_ERROR(call, want, message, what) \
    check_error((call), (want), (message), __FILE__, __LINE__, (what))

static inline int check_near(double got, double want, double tol, const char *file, int line,
                             const char *what) {
    int ok = fabs(got - want) <= tol;   /* false for NaN, as it should be */
    check_report(ok, file, line, "%s: %.9g (want %.9g, tol %.1g)", what, got, want, tol);
    return ok;
}

#define CHECK_NEAR(got, want, tol, what) check_near((got), (want), (tol), __FILE__, __LINE__, (what))

/* Prints the summary line and returns the process exit code. */
static inline int check_summary(void) {
    int passed = *check_counter(0), failed = *check_counter(1);
    printf("\n%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

/* Formats into a static buffer (for building expected messages that contain paths). One
 * thread only; each call overwrites the previous result. */
static inline const char *sfmt(const char *format, ...) {
    static char buffer[4096];
    va_list ap;
    va_start(ap, format);
    vsnprintf(buffer, sizeof buffer, format, ap);
    va_end(ap);
    return buffer;
}

/* ---- a minimal JSON syntax checker (RFC 8259 grammar, no semantics) -------------------------
 * Enough to prove descent_optimizer_describe() returns well-formed JSON; fields are then
 * checked with strstr. Returns 1 when `text` is exactly one JSON value (plus whitespace). */
static inline void json_ws(const char **s) {
    while (**s == ' ' || **s == '\t' || **s == '\n' || **s == '\r') ++*s;
}

static inline int json_value(const char **s, int depth);

static inline int json_string(const char **s) {
    if (**s != '"') return 0;
    ++*s;
    while (**s && **s != '"') {
        if ((unsigned char)**s < 0x20) return 0;
        if (**s == '\\') {
            ++*s;
            if (**s == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (!strchr("0123456789abcdefABCDEF", (*s)[k]) || !(*s)[k]) return 0;
                *s += 4;
            } else if (!**s || !strchr("\"\\/bfnrt", **s)) {
                return 0;
            }
        }
        ++*s;
    }
    if (**s != '"') return 0;
    ++*s;
    return 1;
}

static inline int json_number(const char **s) {
    const char *p = *s;
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (*p >= '0' && *p <= '9') p++;
    else return 0;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    *s = p;
    return 1;
}

static inline int json_value(const char **s, int depth) {
    if (depth > 64) return 0;
    json_ws(s);
    if (**s == '{' || **s == '[') {
        char close = **s == '{' ? '}' : ']';
        int object = **s == '{';
        ++*s;
        json_ws(s);
        if (**s == close) { ++*s; return 1; }
        for (;;) {
            json_ws(s);
            if (object) {
                if (!json_string(s)) return 0;
                json_ws(s);
                if (**s != ':') return 0;
                ++*s;
            }
            if (!json_value(s, depth + 1)) return 0;
            json_ws(s);
            if (**s == ',') { ++*s; continue; }
            if (**s == close) { ++*s; return 1; }
            return 0;
        }
    }
    if (**s == '"') return json_string(s);
    if (strncmp(*s, "true", 4) == 0) { *s += 4; return 1; }
    if (strncmp(*s, "false", 5) == 0) { *s += 5; return 1; }
    if (strncmp(*s, "null", 4) == 0) { *s += 4; return 1; }
    return json_number(s);
}

static inline int json_valid(const char *text) {
    const char *s = text;
    if (!json_value(&s, 0)) return 0;
    json_ws(&s);
    return *s == '\0';
}

/* ---- small helpers ------------------------------------------------------------------------*/

/* The registered optimizer names as a malloc'ed string (the caller frees it), or NULL. */
static inline char *names_string(void) {
    int64_t needed = 0;
    if (descent_optimizer_names(NULL, 0, &needed) != DESCENT_OK || needed <= 0) return NULL;
    char *buf = malloc((size_t)needed);
    if (!buf) return NULL;
    if (descent_optimizer_names(buf, needed, &needed) != DESCENT_OK) { free(buf); return NULL; }
    return buf;
}

/* Whether `name` is one of the comma-separated entries of `list`. */
static inline int list_has(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* How many times `name` appears in the comma-separated `list`. */
static inline int list_count(const char *list, const char *name) {
    size_t n = strlen(name);
    int count = 0;
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) count++;
        p = comma ? comma + 1 : NULL;
    }
    return count;
}

/* descent_optimizer_describe() into a malloc'ed string (the caller frees it), or NULL. */
static inline char *describe_string(const char *name) {
    int64_t needed = 0;
    if (descent_optimizer_describe(name, NULL, 0, &needed) != DESCENT_OK || needed <= 0) return NULL;
    char *buf = malloc((size_t)needed);
    if (!buf) return NULL;
    if (descent_optimizer_describe(name, buf, needed, &needed) != DESCENT_OK) { free(buf); return NULL; }
    return buf;
}

/* descent_plugin_search_path() as an unknown optimizer's message lists it ("/a, /b"), in a
 * static buffer ("" when the call fails). One thread only. */
static inline const char *searched_folders(void) {
    static char text[4096];
    char path[4096];
    int64_t needed = 0;
    text[0] = '\0';
    if (descent_plugin_search_path(path, (int64_t)sizeof path, &needed) != DESCENT_OK) return text;
    size_t n = 0;
    for (const char *p = path; *p && n + 3 < sizeof text; p++) {
        if (*p == ':') { text[n++] = ','; text[n++] = ' '; }
        else text[n++] = *p;
    }
    text[n] = '\0';
    return text;
}

/* Reads a hyperparameter (or "step"); NaN when the call fails. */
static inline double get_value(const descent_optimizer *opt, const char *key) {
    double v = NAN;
    if (descent_optimizer_get(opt, key, &v) != DESCENT_OK) return NAN;
    return v;
}

#endif /* DESCENT_TEST_CHECK_H */
