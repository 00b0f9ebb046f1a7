"""descent.datasets: IDX files written here (raw and gzip), malformed ones, and Debian's
Fashion-MNIST when it is installed."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import descent
from conftest import last_error

FASHION = Path(descent.datasets.FASHION_MNIST_DIR)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file: 2 zero bytes, the type, the dimension count, big-endian int32 dimensions, data."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_pair(folder: Path, images: np.ndarray, labels: np.ndarray, compress: bool = False, prefix: str = "train"):
    opener = gzip.compress if compress else (lambda b: b)
    suffix = ".gz" if compress else ""
    img = folder / f"{prefix}-images-idx3-ubyte{suffix}"
    lab = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
    img.write_bytes(opener(idx_bytes(images)))
    lab.write_bytes(opener(idx_bytes(labels)))
    return img, lab


@pytest.fixture
def sample(rng):
    images = rng.integers(0, 256, size=(7, 4, 3), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    return images, labels


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_load_idx_reads_values_scaled_to_unit_range(tmp_path, sample, compress):
    images, labels = sample
    img, lab = write_pair(tmp_path, images, labels, compress)
    x, y = descent.datasets.load_idx(img, lab)
    assert x.shape == (7, 12) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.shape == (7,) and y.dtype == np.int32
    np.testing.assert_allclose(x, images.reshape(7, 12) / 255.0, rtol=1e-6)
    assert x[0, 0] == 0.0 and x[0, 1] == 1.0
    np.testing.assert_array_equal(y, labels)
    # usable directly for training (float32, C-contiguous: no conversion needed)
    net = descent.Network(sizes=[12, 5, 10], seed=1)
    assert np.isfinite(net.train_step(x, y))


def test_gzip_is_recognised_by_content_not_name(tmp_path, sample):
    images, labels = sample
    img, lab = tmp_path / "images.bin", tmp_path / "labels.bin"
    img.write_bytes(gzip.compress(idx_bytes(images)))
    lab.write_bytes(idx_bytes(labels))
    x, y = descent.datasets.load_idx(str(img), str(lab))
    np.testing.assert_array_equal(y, labels)
    assert x.shape == (7, 12)


def test_loaded_arrays_own_their_memory(tmp_path, sample):
    images, labels = sample
    x, y = descent.datasets.load_idx(*write_pair(tmp_path, images, labels))
    x2, _ = descent.datasets.load_idx(*write_pair(tmp_path, images, labels))
    x[...] = 0.5  # writable and independent of other loads
    assert x2[0, 1] == 1.0
    del x2
    import gc
    gc.collect()
    assert np.all(x == 0.5) and y.flags.writeable
    # The arrays hold the library's buffers; a view outliving the array keeps them alive.
    tail = x[3:]
    labels_view = y[1:]
    del x, y
    gc.collect()
    junk = [descent.datasets.load_idx(*write_pair(tmp_path, images, labels)) for _ in range(20)]
    assert np.all(tail == 0.5) and tail.shape == (4, 12)
    np.testing.assert_array_equal(labels_view, labels[1:])
    del junk, tail, labels_view
    gc.collect()


def test_mnist_format_folder(tmp_path, sample, rng):
    images, labels = sample
    write_pair(tmp_path, images, labels, compress=True, prefix="train")
    test_images = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    write_pair(tmp_path, test_images, np.array([1, 2, 3], np.uint8), compress=False, prefix="t10k")
    (x_train, y_train), (x_test, y_test) = descent.datasets.fashion_mnist(tmp_path)
    assert x_train.shape == (7, 12) and x_test.shape == (3, 12)
    np.testing.assert_array_equal(y_test, [1, 2, 3])


def test_missing_files(tmp_path, sample):
    images, labels = sample
    img, lab = write_pair(tmp_path, images, labels)
    with pytest.raises(descent.NotFound) as info:
        descent.datasets.load_idx(tmp_path / "absent-images", lab)
    assert str(info.value) == last_error() and "absent-images" in str(info.value)
    with pytest.raises(descent.NotFound) as info:
        descent.datasets.load_idx(img, tmp_path / "absent-labels")
    assert "absent-labels" in str(info.value)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        descent.datasets.fashion_mnist(tmp_path / "empty")


def test_directory_instead_of_file_is_an_io_error(tmp_path, sample):
    images, labels = sample
    _, lab = write_pair(tmp_path, images, labels)
    folder = tmp_path / "a_dir"
    folder.mkdir()
    with pytest.raises(descent.IOError) as info:
        descent.datasets.load_idx(folder, lab)
    assert str(info.value) == last_error()


def _format_error(img, lab, *needles):
    with pytest.raises(descent.FormatError) as info:
        descent.datasets.load_idx(img, lab)
    msg = str(info.value)
    assert msg == last_error()
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_malformed_files_are_format_errors(tmp_path, sample):
    images, labels = sample
    good_img, good_lab = write_pair(tmp_path, images, labels)
    data = good_img.read_bytes()

    bad_magic = tmp_path / "bad-magic"
    bad_magic.write_bytes(b"\x12\x34" + data[2:])
    _format_error(bad_magic, good_lab, "bad-magic")

    float_type = tmp_path / "float-type"
    float_type.write_bytes(data[:2] + b"\x0d" + data[3:])
    _format_error(float_type, good_lab, "0x0D")

    truncated = tmp_path / "truncated"
    truncated.write_bytes(data[:-5])
    _format_error(truncated, good_lab, "truncated")

    extra = tmp_path / "extra"
    extra.write_bytes(data + b"\0\0\0")
    _format_error(extra, good_lab, "extra")

    header_only = tmp_path / "header-only"
    header_only.write_bytes(data[:6])
    _format_error(header_only, good_lab)

    huge = tmp_path / "huge-claim"  # claims 2^31 elements: an error, and no huge allocation
    huge.write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, 0x7FFFFFFF, 28, 28) + b"\0" * 16)
    _format_error(huge, good_lab, "huge-claim")

    zero_dim = tmp_path / "zero-dim"
    zero_dim.write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, 0, 4, 3))
    _format_error(zero_dim, good_lab)

    corrupt_gz = tmp_path / "corrupt.gz"
    blob = bytearray(gzip.compress(data))
    blob[len(blob) // 2] ^= 0xFF
    blob[len(blob) // 2 + 1] ^= 0xFF
    corrupt_gz.write_bytes(bytes(blob))
    _format_error(corrupt_gz, good_lab, "corrupt.gz")

    two_dim_labels = tmp_path / "labels-2d"
    two_dim_labels.write_bytes(idx_bytes(labels.reshape(7, 1)))
    _format_error(good_img, two_dim_labels, "labels-2d")

    fewer_labels = tmp_path / "labels-6"
    fewer_labels.write_bytes(idx_bytes(labels[:6]))
    _format_error(good_img, fewer_labels, "7", "6")

    text = tmp_path / "text"
    text.write_text("hello, this is not an IDX file at all\n")
    _format_error(text, good_lab, "text")


def test_the_truncated_message_gives_sizes(tmp_path, sample):
    images, labels = sample
    good_img, good_lab = write_pair(tmp_path, images, labels)
    data = good_img.read_bytes()
    cut = tmp_path / "cut"
    cut.write_bytes(data[:-5])
    msg = _format_error(cut, good_lab)
    # "... is truncated: 95 bytes, expected 100 (16-byte header + 84 data bytes for 7 x 4 x 3)"
    assert f"{len(data) - 5} bytes" in msg and f"expected {len(data)}" in msg and "7 x 4 x 3" in msg


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"{FASHION} not installed (Debian package dataset-fashion-mnist)")
def test_fashion_mnist_from_debian():
    (x_train, y_train), (x_test, y_test) = descent.datasets.fashion_mnist()
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert set(np.unique(y_train)) == set(range(10)) and set(np.unique(y_test)) == set(range(10))
    assert np.bincount(y_train).tolist() == [6000] * 10  # Fashion-MNIST is balanced
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert 0.2 < float(x_train.mean()) < 0.4  # Fashion-MNIST's mean pixel is about 0.286
