/*
 * library_path.c -- where the loaded Descent library lives, so the plugins installed with it
 * (<libdir>/descent/plugins) are found relative to the library itself, wherever the prefix is
 * and however the library was found (RUNPATH, LD_LIBRARY_PATH, dlopen by path).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "descent_kernels.h"

char *dk_library_directory(void) {
    Dl_info info;
    /* dladdr on a function of this object names the file it was loaded from. */
    if (dladdr((const void *)&dk_library_directory, &info) == 0 || !info.dli_fname || !info.dli_fname[0])
        return NULL;
    /* Absolute and free of symlinks: the name may be relative to a working directory that
     * changes later (LD_LIBRARY_PATH=lib). */
    char *file = realpath(info.dli_fname, NULL);
    if (!file) return NULL;
    char *directory = strdup(dirname(file));
    free(file);
    return directory;
}
