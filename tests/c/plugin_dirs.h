/*
 * plugin_dirs.h -- where the C tests find plugin libraries. CMake passes both folders as
 * compile definitions; a test built without them fails at compile time, not at run time.
 */
#ifndef DESCENT_TEST_PLUGIN_DIRS_H
#define DESCENT_TEST_PLUGIN_DIRS_H

#ifndef DESCENT_PLUGIN_DIR
#error "define DESCENT_PLUGIN_DIR: the folder where examples/plugins/*.c are built (lion.so)"
#endif
#ifndef DESCENT_TEST_PLUGIN_DIR
#error "define DESCENT_TEST_PLUGIN_DIR: the folder where tests/c/plugins/*.c are built"
#endif

#endif
