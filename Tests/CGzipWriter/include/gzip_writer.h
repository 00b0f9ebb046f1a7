/*
 * gzip_writer.h -- writes gzip files for the Swift tests (zlib), so the shipped library needs
 * no writer of its own. Not part of any product.
 */
#ifndef DESCENT_TESTS_GZIP_WRITER_H
#define DESCENT_TESTS_GZIP_WRITER_H

#include <stdint.h>

/* Writes n bytes as a gzip file. 0 on success, -1 on failure (errno may say why). */
int32_t test_gzip_write_file(const char *path, const void *data, int64_t n);

#endif
