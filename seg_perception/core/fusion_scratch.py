"""Per-thread scratch buffers for fusion's large temporaries.

Why: fusion's depth buffers (a few per camera and occluder level) and its per-cloud
products are megabytes each, made and dropped several times per camera per frame. glibc
serves blocks that size from freshly mapped pages (or trims its heap and grows it back),
and every first touch of a page is a page fault: on the project's 2-core VM a 6-camera
KITTI frame took ~11k faults, a third of fusion's time and far more than the arithmetic
on those buffers. Reusing a few buffers per thread (each worker thread has its own) keeps
their pages mapped. The price is memory held between frames: the largest buffer of each
name seen so far (a few MB per camera-sized grid; nothing above 64 MB is kept).

An array handed out is valid until the same thread asks for the same name again: only
use it for temporaries that die before that.
"""

from __future__ import annotations

import math
import threading

import numpy as np

#: Buffers larger than this are not kept (a cloud of millions of points is not a frame).
_KEEP_BYTES = 64 << 20


class Scratch(threading.local):
    """Named, growable byte buffers of the calling thread, viewed as typed arrays."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
        """An uninitialized C-contiguous array of ``shape`` and ``dtype`` in buffer ``name``."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > _KEEP_BYTES:
            return np.empty(shape, dtype)  # a map-sized cloud: not worth holding on to
        buffer = self._buffers.get(name)
        if buffer is None or buffer.nbytes < nbytes:
            # A quarter more than asked: the next frame's grid is rarely exactly as big.
            buffer = self._buffers[name] = np.empty(nbytes + nbytes // 4 + 64, dtype=np.uint8)
        return buffer[:nbytes].view(dtype).reshape(shape)


#: The buffers fusion uses (one set per thread).
SCRATCH = Scratch()

#: A block this large, released once, raises glibc's thresholds (see settle_allocator).
_SETTLE_BYTES = 8 << 20
_settled = False


def settle_allocator() -> None:
    """Let glibc serve fusion's per-frame temporaries from its heap (once per process).

    Why: glibc hands out blocks of 128 kB and more (a float64 or index array of 16k
    points) as fresh mappings and unmaps them on free, and trims its heap top beyond
    twice that size; every first touch of such a page is a fault, ~1-2 us on a VM: about
    1.5k faults per 6-camera KITTI frame, a fifth of fusion's time, once the scratch
    buffers took the large blocks away. Releasing one large mapped block raises both
    thresholds to its size (glibc's own adaptation, see mallopt(3) M_MMAP_THRESHOLD), as
    any program that frees an 8 MB array does anyway; the block is never touched, so this
    costs nothing. Other allocators just see a short-lived allocation.
    """
    global _settled
    if not _settled:
        _settled = True
        np.empty(_SETTLE_BYTES, dtype=np.uint8)
