"""Readers and writers for the IDX format of (Fashion-)MNIST.

Kept rather than torchvision's MNIST readers (``read_image_file``,
``read_label_file``): they open files uncompressed only, and a gzipped IDX
file (Debian's ``dataset-fashion-mnist``) fails there with a bare
``AssertionError``, a truncated one with a reshape error; on uncompressed
files they read the same arrays and are no faster than this reader.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_DTYPE_CODE = 0x08  # unsigned byte


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a uint8 array.

    Raises:
        ValueError: the file is not an unsigned-byte IDX file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _DTYPE_CODE:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(bytearray(data), dtype=np.uint8, offset=header)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, file holds {array.size} values")
    return array.reshape(shape)


def write_idx(array: np.ndarray, path: str | Path) -> None:
    """Write a uint8 array as IDX, gzipped when ``path`` ends in ``.gz``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _DTYPE_CODE, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
