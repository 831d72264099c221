"""Decorator presets shared by every kernel, so options change in one place.

Each preset is used bare (``@jit``) or with extra ``numba.njit`` options
(``@jit_nocheck(inline="always")``). Every kernel is cached on disk (``cache=True``), in the
folder :mod:`fastctc._cache` picks: Numba's default ``__pycache__`` for a source checkout or an
editable install, Numba's user-wide cache folder for a copy installed in site-packages (so
uninstalling it leaves no stray files behind).
"""

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .._cache import enable_caching


def _preset(**options):
    """A ``numba.njit`` with ``options`` whose dispatchers cache to disk (``cache=True``)."""

    def decorate(func=None, /, **extra):
        if func is None:  # @preset(option=...)
            return lambda f: decorate(f, **extra)
        if "cache" in extra:
            raise TypeError("fastctc's jit presets always cache; pass no 'cache' option")
        return enable_caching(numba.njit(func, cache=False, **options, **extra))

    return decorate


#: Compiled once, cached on disk, GIL released: safe to call from worker threads.
jit = _preset(nogil=True)

#: As ``jit``, and floating-point sums may be reassociated so reductions vectorise. No
#: ``nnan``/``ninf`` assumptions: infinities and NaN keep their meaning.
jit_reassoc = _preset(nogil=True, fastmath={"reassoc", "contract"})

#: As ``jit``, with NumPy's error model: a float division by zero gives inf or NaN instead of
#: raising, so the division needs no test and loops around it vectorise. For code whose
#: divisors cannot be zero.
jit_nocheck = _preset(nogil=True, error_model="numpy")


@intrinsic
def prefetch(typingctx, arr, i):
    """Hint the CPU to bring ``arr[i]`` (1-D, contiguous) into cache; an ``i`` out of range
    only wastes the hint (a prefetch never faults)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"):
        return None
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, keep in all levels, data
        return context.get_dummy_value()

    return types.void(arr, i), codegen


if numba.config.DISABLE_JIT:  # pragma: no cover - interpreted kernels: a hint does nothing

    def prefetch(arr, i):  # noqa: F811
        return None
