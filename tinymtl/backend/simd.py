"""Which of NumPy's SIMD loops run here, as part of what makes two runs bitwise equal.

NumPy compiles many ufuncs several times, for several x86 levels, and picks one when it loads,
from the CPU it finds. For most of them every version gives the same bits, but not for the
transcendental functions: on an AVX-512 CPU (level ``X86_V4``) ``power``, ``log1p``, ``expm1``,
``arctan2`` and their kin run Intel's SVML, whose last bits differ from the C library's
functions that every older CPU runs. Seen in tinymtl: with the same packages and OpenBLAS's
"Haswell" kernels, an AVX-512 Intel machine and an AVX2 AMD one ran every pinned example to the
same bits but the two with an alignment task (the food graph and the molecules). Those are the
ones whose triplet distances ``(Σ d²)^½`` compute ``s^(-½)`` with ``power`` in their backward
(the food graph's nutrient profiles also take ``log1p``), the likely cause: it was inferred
from which examples differ, without an AVX-512 machine to compare the functions on.

So, like the BLAS's kernels (``backend.blas``), the level is recorded by run summaries and
pinned digests. ``numpy.lib.introspect.opt_func_info()`` lists each ufunc's versions and the
one chosen.
"""


def numpy_simd():
    """The x86 level of the SIMD loops NumPy runs here: 'X86_V4' (AVX-512), 'X86_V3' (AVX2 and
    FMA), 'X86_V2' (SSE4.2); on another architecture, its newest dispatch target; None when
    NumPy does not say."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        try:  # (NumPy before 2.0)
            from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
        except ImportError:
            return None
    older_names = {"X86_V4": "AVX512_SKX", "X86_V3": "AVX2", "X86_V2": "SSE42"}  # (before 2.4)
    for level, older in older_names.items():
        if __cpu_features__.get(level) or (level not in __cpu_features__
                                           and __cpu_features__.get(older)):
            return level
    enabled = [target for target in __cpu_dispatch__ if __cpu_features__.get(target)]
    return enabled[-1] if enabled else "baseline"
