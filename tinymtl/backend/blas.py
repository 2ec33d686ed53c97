"""Which BLAS kernels run the matrix products, as threadpoolctl reports them.

NumPy's OpenBLAS picks its kernels when it loads, from the CPU it finds, unless
``OPENBLAS_CORETYPE`` names them: on the 2-core AVX-512 machine that develops tinymtl, a 2048²
float32 product ran at about 410 GFLOP/s with its AVX-512 "SkylakeX" kernels and about 217 with
the AVX2 "Haswell" ones that its environment pinned until December 2026 (``docs/benchmarks.md``,
which says which kernels each figure ran with). The kernels
change the last bits of every product, so they are part of what makes two runs bitwise equal,
like the number of threads (``runs.arms.thread_limit``): benchmarks print them, and pinned
digests record them.
"""


def blas_kernels():
    """The loaded BLAS's kernels (e.g. 'SkylakeX', 'Haswell'), or None when it cannot be told."""
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl then finds)
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return pool.get("architecture")
    return None
