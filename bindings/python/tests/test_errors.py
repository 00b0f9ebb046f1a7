"""Status -> exception mapping: every status class triggered for real through the library, each
exception carrying descent_last_error()'s message verbatim."""
from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import descent
from conftest import BINDING_DIR, clib, last_error


def _raises(cls, fn, *args, **kwargs) -> str:
    """Runs fn, asserts it raises exactly cls (not a sibling), and returns the message after
    checking it is the library's message."""
    with pytest.raises(descent.DescentError) as info:
        fn(*args, **kwargs)
    assert type(info.value) is cls, f"expected {cls.__name__}, got {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert message == last_error() == info.value.message
    assert message  # the library always says why
    return message


def test_class_hierarchy_and_status_codes():
    expected = {
        descent.InvalidArgument: (1, "DESCENT_ERR_INVALID_ARGUMENT", ValueError),
        descent.NotFound: (2, "DESCENT_ERR_NOT_FOUND", LookupError),
        descent.NumericError: (3, "DESCENT_ERR_NUMERIC", ArithmeticError),
        descent.ShapeError: (4, "DESCENT_ERR_SHAPE", ValueError),
        descent.IOError: (5, "DESCENT_ERR_IO", OSError),
        descent.FormatError: (6, "DESCENT_ERR_FORMAT", ValueError),
        descent.PluginError: (7, "DESCENT_ERR_PLUGIN", descent.DescentError),
        descent.OutOfMemory: (8, "DESCENT_ERR_OUT_OF_MEMORY", MemoryError),
        descent.BufferTooSmall: (9, "DESCENT_ERR_BUFFER_TOO_SMALL", descent.DescentError),
    }
    lib = clib
    for cls, (code, name, base) in expected.items():
        assert issubclass(cls, descent.DescentError) and issubclass(cls, base)
        assert cls.status == code and cls.status_name == name
        assert lib.descent_status_name(code).decode() == name  # the C names agree
    assert descent.IOError is not builtins.IOError and descent.IOError.__name__ == "IOError"


def test_invalid_argument_from_the_library():
    msg = _raises(descent.InvalidArgument, descent.Optimizer, "sgd", lr=-2.0)
    assert msg.startswith("descent_optimizer_create: hyperparameter 'lr'")
    net = descent.Network(sizes=[4, 3], seed=1)
    x = np.zeros((2, 4), np.float32)
    msg = _raises(descent.InvalidArgument, net.train_step, x, np.array([0, 7]))  # label 7 >= 3 classes
    assert msg.startswith("descent_net_train_step: ") and "7" in msg
    msg = _raises(descent.InvalidArgument, descent.Network, sizes=[4, 3], activation="swish")
    assert "activation" in msg


def test_not_found_unknown_name_and_missing_files(tmp_path):
    msg = _raises(descent.NotFound, descent.Optimizer, "adamax")
    assert "'adamax'" in msg
    missing = tmp_path / "nope.safetensors"
    msg = _raises(descent.NotFound, descent.Network.load, missing)
    assert str(missing) in msg
    msg = _raises(descent.NotFound, descent.load_plugin, tmp_path / "nope.so")
    assert "nope.so" in msg
    net = descent.Network(sizes=[4, 3], seed=1)
    msg = _raises(descent.NotFound, net.set_optimizer, "adamax")
    assert "adamax" in msg


def test_numeric_error_nan_gradient_leaves_params_untouched():
    p = [np.ones(10, np.float32), np.ones(20, np.float32)]
    g = [np.ones(10, np.float32), np.ones(20, np.float32)]
    g[1][17] = np.nan
    opt = descent.Optimizer("adam")
    msg = _raises(descent.NumericError, opt.update, p, g)
    assert msg.startswith("descent_optimizer_step: ") and "NaN" in msg and "17" in msg
    assert np.all(p[0] == 1) and np.all(p[1] == 1)
    assert opt.step_count == 0
    g[1][17] = np.inf
    msg = _raises(descent.NumericError, opt.update, p, g)
    assert "Inf" in msg or "inf" in msg


def test_numeric_error_nan_input_in_training_and_prediction():
    net = descent.Network(sizes=[4, 5, 3], seed=1)
    x = np.zeros((2, 4), np.float32)
    x[1, 2] = np.nan
    before = net.params["W1"].copy()
    msg = _raises(descent.NumericError, net.train_step, x, np.array([0, 1]))
    assert msg.startswith("descent_net_train_step: ")
    np.testing.assert_array_equal(net.params["W1"], before)  # errors change nothing
    _raises(descent.NumericError, net.predict, x)


def test_shape_error_when_shapes_change_after_the_first_step():
    opt = descent.Optimizer("momentum")
    p, g = np.zeros(6, np.float32), np.ones(6, np.float32)
    opt.update([p], [g])
    q, h = np.zeros(7, np.float32), np.ones(7, np.float32)
    snapshot = q.copy()
    msg = _raises(descent.ShapeError, opt.update, [q], [h])
    assert msg.startswith("descent_optimizer_step: ") and "6" in msg and "7" in msg
    np.testing.assert_array_equal(q, snapshot)
    msg = _raises(descent.ShapeError, opt.update, [p, q], [g, h])  # a different tensor count
    assert "2" in msg and "1" in msg
    assert opt.step_count == 1


def test_io_error_saving_into_a_missing_directory(tmp_path):
    net = descent.Network(sizes=[4, 3], seed=1)
    target = tmp_path / "no" / "such" / "dir" / "net.safetensors"
    msg = _raises(descent.IOError, net.save, target)
    assert str(target.parent) in msg or str(target) in msg
    assert not target.parent.exists()
    with pytest.raises(OSError):  # the library's IOError is also an OSError
        net.save(target)


def test_io_error_loading_a_directory(tmp_path):
    msg = _raises(descent.IOError, descent.Network.load, tmp_path)
    assert str(tmp_path) in msg


def test_format_error_loading_a_garbage_checkpoint(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(64) + b"not a checkpoint" * 10)
    msg = _raises(descent.FormatError, descent.Network.load, garbage)
    assert msg.startswith(str(garbage)) or str(garbage) in msg


def test_format_error_truncated_checkpoint(tmp_path):
    good = tmp_path / "good.safetensors"
    descent.Network(sizes=[4, 5, 3], seed=1).save(good)
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 10])
    msg = _raises(descent.FormatError, descent.Network.load, cut)
    assert str(cut) in msg


def test_format_error_spec_not_json():
    # Network() builds valid JSON; the C entry point is reached directly to get a real FormatError.
    import ctypes
    lib = clib
    handle = ctypes.c_void_p()
    status = lib.descent_net_create(b"{not json", ctypes.byref(handle))
    with pytest.raises(descent.FormatError) as info:
        descent.errors.check(status)
    assert str(info.value) == last_error() and not handle


def test_plugin_error_text_file_named_so(tmp_path):
    fake = tmp_path / "fake.so"
    fake.write_text("this is not a shared library\n")
    msg = _raises(descent.PluginError, descent.load_plugin, fake)
    assert str(fake) in msg


def _libm_path() -> str | None:
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "/libm.so" in path or "/libm-" in path:
                return path
    return None


def test_plugin_error_real_library_without_entry_point():
    libm = _libm_path()
    if libm is None:
        pytest.skip("libm is not mapped into this process (no /proc/self/maps entry)")
    msg = _raises(descent.PluginError, descent.load_plugin, libm)
    assert "descent_plugin_entry" in msg
    assert "libm" in msg


def test_buffer_too_small_from_the_measure_then_fill_contract():
    import ctypes
    needed = ctypes.c_int64()
    buf = ctypes.create_string_buffer(2)
    status = clib.descent_optimizer_names(buf, 2, ctypes.byref(needed))
    with pytest.raises(descent.BufferTooSmall) as info:
        descent.errors.check(status)
    assert str(info.value) == last_error()
    assert needed.value > 2


def test_unknown_status_maps_to_the_base_class():
    with pytest.raises(descent.DescentError) as info:
        descent.errors.check(1234)
    assert type(info.value) is descent.DescentError


# -- library discovery ------------------------------------------------------------------------------
def _import_in_subprocess(env_library: str | None, package_root: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DESCENT_LIBRARY"}
    if env_library is not None:
        env["DESCENT_LIBRARY"] = env_library
    env["PYTHONPATH"] = str(package_root)
    code = ("import sys\n"
            "try:\n    import descent\n"
            "except OSError as e:\n    print(str(e)); sys.exit(3)\n"
            "print('loaded', descent.library_path)\n")
    # cwd too: `python -c` puts the working directory first on sys.path.
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          cwd=package_root)


def test_missing_descent_library_raises_oserror_naming_it(tmp_path):
    missing = tmp_path / "missing" / "libdescent.so"
    result = _import_in_subprocess(str(missing), BINDING_DIR)
    assert result.returncode == 3, result.stdout + result.stderr
    out = result.stdout
    assert "DESCENT_LIBRARY" in out and str(missing) in out
    assert "Tried:" in out


def test_no_library_anywhere_lists_every_path_tried(tmp_path):
    # A copy of the package in a folder with no library beside it and no build folders above it.
    import shutil
    root = tmp_path / "a" / "b"
    shutil.copytree(BINDING_DIR / "descent", root / "descent",
                    ignore=shutil.ignore_patterns("_lib", "__pycache__", "lab"))
    result = _import_in_subprocess(None, root)
    assert result.returncode == 3, result.stdout + result.stderr
    out = result.stdout
    assert "libdescent.so not found" in out and "Tried:" in out
    assert str(root / "descent" / "_lib" / "libdescent.so") in out
    assert str(tmp_path / ".build" / "release" / "libdescent.so") in out
    assert str(tmp_path / "build" / "lib" / "libdescent.so") in out


def test_descent_library_env_is_used(tmp_path):
    result = _import_in_subprocess(str(descent.library_path), BINDING_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(descent.library_path) in result.stdout
