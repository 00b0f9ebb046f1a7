/*
 * not_a_plugin.c -- test fixture: a perfectly good shared library that is not a Descent plugin
 * (it does not export descent_plugin_entry). Loading it must fail with DESCENT_ERR_PLUGIN and a
 * message saying so, and register nothing.
 */
#include "descent_plugin.h"

DESCENT_PLUGIN_EXPORT int not_a_plugin_answer(void) { return 42; }
