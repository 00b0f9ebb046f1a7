"""Finding libdescent.so and declaring its C functions for ctypes.

Every declaration has the C prototype from include/descent.h above it. Pointers to array data
are passed as plain addresses (c_void_p): the Python layer checks dtype, order and shape itself,
which is both clearer in its messages and cheaper per call than ndpointer's checks.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_DIR.parents[2]  # bindings/python/descent -> repository root

# What libdescent.so needs from the system (the Swift runtime is linked into it), by Debian package.
_SYSTEM_LIBRARIES = {
    "libomp.so.5": "libomp5",
    "libz.so.1": "zlib1g",
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
}


def _package_dirs() -> list[Path]:
    """The folders of the `descent` package: one for an installed wheel; for an editable install
    (pip install -e) the installed tree, which holds the built library, then the source tree."""
    import sys
    package = sys.modules.get(__package__ or "descent")
    dirs = [Path(p) for p in getattr(package, "__path__", [])]
    return dirs or [_PACKAGE_DIR]


def candidate_paths() -> list[Path]:
    """Where the library is looked for, in order: DESCENT_LIBRARY, the copy that pip install built
    into the package, then the repository's build folders (a checkout used without installing)."""
    paths = []
    env = os.environ.get("DESCENT_LIBRARY")
    if env:
        paths.append(Path(env))
    for package_dir in _package_dirs():
        path = package_dir / "_lib" / "libdescent.so"
        if path not in paths:
            paths.append(path)
    for build in ("build/lib", ".build/release", ".build/debug"):
        paths.append(_REPO_ROOT / build / "libdescent.so")
    return paths


def _open(path: Path) -> ctypes.CDLL:
    """dlopen, with the missing system library named by its Debian package when that is the cause."""
    try:
        return ctypes.CDLL(str(path))
    except OSError as error:
        message = str(error)
        for soname, package in _SYSTEM_LIBRARIES.items():
            if soname in message:
                raise OSError(f"{path} needs {soname}, which is not installed: install Debian's {package} "
                              f"(apt-get install {package}). The loader said: {message}") from None
        if "libswift" in message:
            raise OSError(f"{path} needs a shared Swift runtime that is not on the library path: it was "
                          "built without -static-stdlib (a plain `swift build`). Reinstall the package "
                          "(pip install ./bindings/python builds one with the runtime linked in), or put "
                          f"the Swift toolchain's usr/lib/swift/linux on LD_LIBRARY_PATH. The loader said: {message}") from None
        raise


def _load() -> ctypes.CDLL:
    env = os.environ.get("DESCENT_LIBRARY")
    if env and not Path(env).is_file():
        # An explicit choice that does not exist is an error, not a reason to pick another copy.
        raise OSError(
            f"DESCENT_LIBRARY is set to {env}, which is not a file. Point it at libdescent.so, or "
            "unset it to search the package and the repository's build folders. Tried:\n  " + env)
    tried = []
    for path in candidate_paths():
        if path.is_file():
            return _open(path)
        tried.append(str(path))
    raise OSError(
        "libdescent.so not found: the package was not installed with pip (which builds it), or "
        "its build failed. Install it with `pip install ./bindings/python` from a clone of the "
        "repository, or set DESCENT_LIBRARY to a libdescent.so. Tried:\n  " + "\n  ".join(tried))


lib = _load()
path = lib._name


def _find_data_offset():
    """Where an ndarray keeps its data pointer, for reading it without building the ~1.5 us
    `a.ctypes` object on every call. In CPython, numpy's PyArrayObject starts with PyObject_HEAD
    (object.__basicsize__ bytes) followed by `char *data`: a layout numpy's C API has fixed for
    years. It is verified here on several arrays (offset views included); anything else (another
    interpreter, another layout) falls back to `a.ctypes.data`."""
    import sys
    import numpy as np
    offset = object.__basicsize__
    if sys.implementation.name != "cpython" or np.ndarray.__basicsize__ < offset + ctypes.sizeof(ctypes.c_void_p):
        return None
    base = np.arange(64, dtype=np.float32)
    samples = [base, base[5:], base.reshape(8, 8)[2:], np.zeros((3, 4), np.int32), np.empty(0, np.float64),
               np.array(1.0, np.float32)]
    for a in samples:
        if ctypes.c_void_p.from_address(id(a) + offset).value != a.ctypes.data:
            return None
    return offset


_DATA_OFFSET = _find_data_offset()
DATA_OFFSET = _DATA_OFFSET  # for hot paths that inline data_address (None: use data_address)
if _DATA_OFFSET is not None:
    def data_address(array, _read=ctypes.c_void_p.from_address, _offset=_DATA_OFFSET) -> int:
        """The address of a numpy array's first element (what `array.ctypes.data` gives, ~5x faster)."""
        return _read(id(array) + _offset).value or 0
else:
    def data_address(array) -> int:
        """The address of a numpy array's first element."""
        return array.ctypes.data

c_int32, c_int64, c_float, c_double = ctypes.c_int32, ctypes.c_int64, ctypes.c_float, ctypes.c_double
c_char_p, c_void_p = ctypes.c_char_p, ctypes.c_void_p
P = ctypes.POINTER


def _declare(name: str, restype, *argtypes) -> None:
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise OSError(f"{path} has no {name}: it is older than this binding; rebuild it") from None
    fn.restype = restype
    fn.argtypes = list(argtypes)


# const char *descent_version(void);
_declare("descent_version", c_char_p)
# const char *descent_last_error(void);
_declare("descent_last_error", c_char_p)
# const char *descent_status_name(int32_t status);
_declare("descent_status_name", c_char_p, c_int32)
# int32_t descent_set_num_threads(int32_t n);
_declare("descent_set_num_threads", c_int32, c_int32)
# int32_t descent_get_num_threads(void);
_declare("descent_get_num_threads", c_int32)
# const char *descent_blas_info(void);
_declare("descent_blas_info", c_char_p)

# int32_t descent_optimizer_create(const char *name, const char *hparams, descent_optimizer **out);
_declare("descent_optimizer_create", c_int32, c_char_p, c_char_p, P(c_void_p))
# int32_t descent_optimizer_step(descent_optimizer *opt, int64_t count, float *const *params,
#                                const float *const *grads, const int64_t *lengths);
_declare("descent_optimizer_step", c_int32, c_void_p, c_int64, c_void_p, c_void_p, c_void_p)
# int32_t descent_optimizer_set(descent_optimizer *opt, const char *key, double value);
_declare("descent_optimizer_set", c_int32, c_void_p, c_char_p, c_double)
# int32_t descent_optimizer_get(const descent_optimizer *opt, const char *key, double *value);
_declare("descent_optimizer_get", c_int32, c_void_p, c_char_p, P(c_double))
# int32_t descent_optimizer_reset(descent_optimizer *opt);
_declare("descent_optimizer_reset", c_int32, c_void_p)
# int32_t descent_optimizer_free(descent_optimizer *opt);
_declare("descent_optimizer_free", c_int32, c_void_p)
# int32_t descent_optimizer_name(const descent_optimizer *opt, const char **name);
_declare("descent_optimizer_name", c_int32, c_void_p, P(c_char_p))
# int32_t descent_optimizer_names(char *buf, int64_t cap, int64_t *needed);
_declare("descent_optimizer_names", c_int32, c_char_p, c_int64, P(c_int64))
# int32_t descent_optimizer_describe(const char *name, char *buf, int64_t cap, int64_t *needed);
_declare("descent_optimizer_describe", c_int32, c_char_p, c_char_p, c_int64, P(c_int64))
# int32_t descent_plugin_load(const char *path);
_declare("descent_plugin_load", c_int32, c_char_p)
# int32_t descent_plugin_load_dir(const char *dir);
_declare("descent_plugin_load_dir", c_int32, c_char_p)
# int32_t descent_plugin_search_path(char *buf, int64_t cap, int64_t *needed);
_declare("descent_plugin_search_path", c_int32, c_char_p, c_int64, P(c_int64))

# int32_t descent_net_create(const char *spec_json, descent_net **out);
_declare("descent_net_create", c_int32, c_char_p, P(c_void_p))
# void descent_net_free(descent_net *net);
_declare("descent_net_free", None, c_void_p)
# int32_t descent_net_set_optimizer(descent_net *net, const char *name, const char *hparams);
_declare("descent_net_set_optimizer", c_int32, c_void_p, c_char_p, c_char_p)
# int32_t descent_net_optimizer(descent_net *net, descent_optimizer **out);
_declare("descent_net_optimizer", c_int32, c_void_p, P(c_void_p))
# int32_t descent_net_train_step(descent_net *net, const float *x, const int32_t *labels,
#                                int64_t batch, float *loss);
# (loss as c_void_p too: the training loop passes the address of a c_float it keeps; ctypes checks
# a c_void_p argument faster than a POINTER(c_float) one, and this call is the per-step hot path)
_declare("descent_net_train_step", c_int32, c_void_p, c_void_p, c_void_p, c_int64, c_void_p)
# int32_t descent_net_forward_backward(descent_net *net, const float *x, const int32_t *labels,
#                                      int64_t batch, float *loss);
_declare("descent_net_forward_backward", c_int32, c_void_p, c_void_p, c_void_p, c_int64, c_void_p)
# int32_t descent_net_apply_update(descent_net *net);
_declare("descent_net_apply_update", c_int32, c_void_p)
# int32_t descent_net_predict(descent_net *net, const float *x, int64_t batch, float *probs);
_declare("descent_net_predict", c_int32, c_void_p, c_void_p, c_int64, c_void_p)
# int32_t descent_net_evaluate(descent_net *net, const float *x, const int32_t *labels, int64_t n,
#                              float *loss, float *accuracy);
_declare("descent_net_evaluate", c_int32, c_void_p, c_void_p, c_void_p, c_int64, P(c_float), P(c_float))
# int64_t descent_net_param_count(const descent_net *net);
_declare("descent_net_param_count", c_int64, c_void_p)
# int32_t descent_net_param(descent_net *net, int64_t index, const char **name, float **data,
#                           float **grad, int64_t *length);
_declare("descent_net_param", c_int32, c_void_p, c_int64, P(c_char_p), P(c_void_p), P(c_void_p), P(c_int64))
# int32_t descent_net_param_shape(const descent_net *net, int64_t index, int32_t *rank, int64_t *dims,
#                                 int32_t cap);
_declare("descent_net_param_shape", c_int32, c_void_p, c_int64, P(c_int32), P(c_int64), c_int32)
# int32_t descent_net_set_allreduce(descent_net *net, int32_t (*allreduce)(void *, float *, int64_t),
#                                   void *context, int32_t rank, int32_t ranks, int32_t overlap);
ALLREDUCE_FN = ctypes.CFUNCTYPE(c_int32, c_void_p, ctypes.POINTER(ctypes.c_float), c_int64)
_declare("descent_net_set_allreduce", c_int32, c_void_p, ALLREDUCE_FN, c_void_p, c_int32, c_int32, c_int32)
# int32_t descent_net_arena(descent_net *net, float **params, float **grads, int64_t *length);
_declare("descent_net_arena", c_int32, c_void_p, P(c_void_p), P(c_void_p), P(c_int64))
# int32_t descent_net_param_offset(const descent_net *net, int64_t index, int64_t *offset);
_declare("descent_net_param_offset", c_int32, c_void_p, c_int64, P(c_int64))
# int32_t descent_net_activations(descent_net *net, int64_t layer, const float **data,
#                                 int64_t *rows, int64_t *cols);
_declare("descent_net_activations", c_int32, c_void_p, c_int64, P(c_void_p), P(c_int64), P(c_int64))
# int32_t descent_net_spec(const descent_net *net, char *buf, int64_t cap, int64_t *needed);
_declare("descent_net_spec", c_int32, c_void_p, c_char_p, c_int64, P(c_int64))
# int32_t descent_net_save(const descent_net *net, const char *path);
_declare("descent_net_save", c_int32, c_void_p, c_char_p)
# int32_t descent_net_load(const char *path, descent_net **out);
_declare("descent_net_load", c_int32, c_char_p, P(c_void_p))
# int32_t descent_dataset_load_idx(const char *images_path, const char *labels_path, float **images,
#                                  int32_t **labels, int64_t *count, int64_t *features);
_declare("descent_dataset_load_idx", c_int32, c_char_p, c_char_p, P(c_void_p), P(c_void_p), P(c_int64), P(c_int64))
# void descent_dataset_free(float *images, int32_t *labels);
_declare("descent_dataset_free", None, c_void_p, c_void_p)
