"""Keep freed array memory in the process instead of returning it to the OS at once.

A training step allocates the same large temporaries every time (im2col buffers of many MB).
glibc serves allocations above its mmap threshold with fresh pages and unmaps them on free, so
each step the kernel must fault in and zero those pages again: on a 2-core machine that was a
third of a CNN step. Raising the mmap and trim thresholds (``mallopt``) lets freed blocks be
reused, as PyTorch's CPU tuning guide achieves by swapping in jemalloc or tcmalloc.

Glibc only; elsewhere, or with ``TINYMTL_KEEP_MALLOC=1``, nothing is changed.
"""

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 512 * 1024 * 1024  # blocks up to this size are served from (and kept in) the heap


def configure_allocator():
    """Raise glibc's mmap/trim thresholds; returns True when the change was made."""
    if os.environ.get("TINYMTL_KEEP_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2 * KEEP_BYTES))


def available_bytes(device="cpu"):
    """Memory a new allocation can still get: the kernel's MemAvailable (free plus reclaimable
    caches) on Linux, free pages elsewhere; on 'cuda', the GPU's free memory plus what CuPy's
    pool holds for reuse. None when it cannot be told."""
    if device == "cuda":
        from tinymtl.backend.device import array_module

        cupy = array_module("cuda")
        free, _ = cupy.cuda.Device().mem_info
        return free + cupy.get_default_memory_pool().free_bytes()
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count):
    """1536 -> '1.5 KiB': binary units, as memory is sold and reported by the kernel."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024


def process_memory():
    """This process's memory now: {'rss': resident bytes, 'peak_rss': the most it has held}
    (Linux's /proc/self/statm and getrusage; elsewhere what ``resource`` tells), and on a GPU
    {'gpu_pool': bytes CuPy's pool holds}."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    rss = peak
    try:
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    usage = {"rss": rss, "peak_rss": max(peak, rss)}
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        usage["gpu_pool"] = int(cupy.get_default_memory_pool().total_bytes())
    return usage
