"""Which BLAS kernels run the matrix products, as threadpoolctl reports them.

NumPy's OpenBLAS picks its kernels when it loads, from the CPU it finds, unless
``OPENBLAS_CORETYPE`` names them: on the 2-core AVX-512 machine that develops tinymtl, a 2048²
float32 product ran at about 410 GFLOP/s with its AVX-512 "SkylakeX" kernels and about 217 with
the AVX2 "Haswell" ones that its environment pinned until December 2026 (``docs/benchmarks.md``,
which says which kernels each figure ran with). The kernels
change the last bits of every product, so they are part of what makes two runs bitwise equal,
like the number of threads (``blas_threads``; ``runs.arms.thread_limit`` sets it for a sweep's
arms): benchmarks print them, run summaries and pinned digests record them.
"""


def _blas_pool():
    """threadpoolctl's record of the BLAS NumPy loaded, or None when it finds none."""
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl then finds)
    from threadpoolctl import threadpool_info

    return next((pool for pool in threadpool_info() if pool.get("user_api") == "blas"), None)


def blas_kernels():
    """The loaded BLAS's kernels (e.g. 'SkylakeX', 'Haswell'), or None when it cannot be told."""
    pool = _blas_pool()
    return pool.get("architecture") if pool else None


def blas_threads():
    """How many threads the loaded BLAS splits a product over, or None when it cannot be told.

    A product split over more threads sums its blocks in another order, so it rounds
    differently: with ``OPENBLAS_NUM_THREADS=1`` the README's example ends a few last bits
    away from its 2-thread result."""
    pool = _blas_pool()
    return pool.get("num_threads") if pool else None
