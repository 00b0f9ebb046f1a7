"""param_buffer and grad_buffer: every parameter and every gradient as one flat zero-copy
float32 view of the library's arenas, ``params``/``grads`` slices of them."""
from __future__ import annotations

import gc

import numpy as np

import descent
from conftest import toy_batch

# W1 [5, 4], b1, gamma1, beta1 [4], W2 [4, 3], b2, gamma2, beta2 [3], W3 [3, 2], b3 [2], each
# rounded up to 16 floats (64 bytes).
OFFSETS = {"W1": 0, "b1": 32, "gamma1": 48, "beta1": 64, "W2": 80, "b2": 96, "gamma2": 112, "beta2": 128,
           "W3": 144, "b3": 160}


def _net():
    return descent.Network(sizes=[5, 4, 3, 2], batchnorm=True, seed=3)


def test_buffers_are_flat_writable_float32_views_with_params_inside():
    net = _net()
    params, grads = net.param_buffer, net.grad_buffer
    for buffer in (params, grads):
        assert buffer.dtype == np.float32 and buffer.shape == (176,) and buffer.flags.writeable
        assert buffer.ctypes.data % 64 == 0
    assert not np.shares_memory(params, grads)
    for name, offset in OFFSETS.items():
        view, grad = net.params[name], net.grads[name]
        assert np.shares_memory(view, params) and np.shares_memory(grad, grads)
        assert view.ctypes.data == params.ctypes.data + 4 * offset
        assert grad.ctypes.data == grads.ctypes.data + 4 * offset
    inside = np.zeros(176, dtype=bool)
    for name, offset in OFFSETS.items():
        inside[offset:offset + net.params[name].size] = True
    np.testing.assert_array_equal(params[~inside], 0)  # the padding
    np.testing.assert_array_equal(params[OFFSETS["gamma1"]:OFFSETS["gamma1"] + 4], 1)


def test_writes_through_the_buffer_change_the_network():
    net = _net()
    net.param_buffer[OFFSETS["b3"]:OFFSETS["b3"] + 2] = [0.25, -0.5]
    np.testing.assert_array_equal(net.params["b3"], np.array([0.25, -0.5], dtype=np.float32))


def test_gradients_written_through_grad_buffer_are_the_ones_applied(rng):
    net = _net()
    net.set_optimizer("sgd", lr=0.1)
    x, y = toy_batch(rng, 4, 5, 2)
    net.forward_backward(x, y)
    net.grad_buffer[:] = 0
    before = net.param_buffer.copy()
    net.apply_update()
    np.testing.assert_array_equal(net.param_buffer, before)

    net.forward_backward(x, y)
    net.grad_buffer[:] = 1  # padding included: never read
    before = net.param_buffer.copy()
    net.apply_update()
    for name, offset in OFFSETS.items():
        size = net.params[name].size
        want = before[offset:offset + size] - np.float32(0.1)
        np.testing.assert_array_equal(net.params[name].ravel(), want)
    inside = np.zeros(176, dtype=bool)
    for name, offset in OFFSETS.items():
        inside[offset:offset + net.params[name].size] = True
    np.testing.assert_array_equal(net.param_buffer[~inside], 0)


def test_buffer_outlives_a_closed_network():
    net = _net()
    buffer = net.param_buffer
    w1 = net.params["W1"].copy()
    net.close()
    del net
    gc.collect()
    np.testing.assert_array_equal(buffer[:20].reshape(5, 4), w1)
