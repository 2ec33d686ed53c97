"""3×3 convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray 2016).

A direct 3×3 convolution spends 9 multiply-adds per output pixel and input channel. Winograd's
algorithm computes a 2×2 output tile from a 4×4 input tile d (tiles overlap by 2) with 16
multiplications instead of 36:

    Y = Aᵀ [ U ⊙ V ] A        U = G g Gᵀ  (the 3×3 filter g, made 4×4)
                              V = Bᵀ d B  (the 4×4 input tile)

    Bᵀ = [1  0 -1  0]      G = [1    0    0 ]      Aᵀ = [1  1  1  0]
         [0  1  1  0]          [1/2  1/2  1/2]           [0  1 -1 -1]
         [0 -1  1  0]          [1/2 -1/2  1/2]
         [0  1  0 -1]          [0    0    1 ]

Summed over the input channels, the 16 elementwise products of a tile become 16 matrix
products over all tiles at once: M[ξ] = V[ξ] U[ξ], with V[ξ] (P tiles × C) and U[ξ] (C × K),
ξ one of the 16 positions of a tile. That is 2.25x fewer multiply-adds than im2col's product,
paid for with the transforms (memory-bound kernels: ``backend.kernels``, ``winograd_*``).

Every step is linear, so backward is the same steps' adjoints, in reverse:

    dM = A dY Aᵀ per tile                                  (winograd_output_backward)
    dU[ξ] = V[ξ]ᵀ dM[ξ]      then  dg = Gᵀ dU G             (the weight gradient)
    dV[ξ] = dM[ξ] U[ξ]ᵀ      then  dx = B dV Bᵀ added back per tile (winograd_input_backward)

**Off by default, because it does not pay on the machine tinymtl is measured on.** With
``TINYMTL_WINOGRAD=1`` (or ``winograd.WINOGRAD = True``) ``conv2d`` uses it for 3×3 kernels of
stride 1, dilation 1 and one group with at least ``MIN_CHANNELS`` input channels. On the
2-core AVX-512 machine of ``docs/benchmarks.md`` (``benchmarks/conv_layers.py``) the saved
multiply-adds cost less than the transforms' memory traffic: BLAS runs the products near the
machine's peak, while each transform streams 16 planes of tiles through memory, so im2col was
as fast or faster for every layer there; a first layer's 1 or 3 channels make the 16 products
too thin to pay at all. Where products are slow next to memory it can win: the measurement
decides. Its float32 results differ from im2col's in the last bits (the transforms add and
subtract; F(2×2, 3×3) is the variant whose error stays at that level); the float64 gradient
checks hold it to the same bound as every op.
"""

import os

from tinymtl.autograd.function import Function
from tinymtl.autograd.ops._util import bias_gradient
from tinymtl.backend import get_array_module
from tinymtl.backend.kernels import kernels_for

WINOGRAD = os.environ.get("TINYMTL_WINOGRAD", "0") == "1"
MIN_CHANNELS = 8  # below, even the products alone are slower than im2col's (conv_layers.py)
G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def applies(weight_shape, stride, dilation, groups):
    """Whether ``conv2d`` computes this convolution by Winograd F(2×2, 3×3)."""
    out_channels, in_channels, kh, kw = weight_shape
    return (WINOGRAD and (kh, kw) == (3, 3) and stride == (1, 1) and dilation == (1, 1)
            and groups == 1 and in_channels >= MIN_CHANNELS)


def filter_transform(weight):
    """U (16, C, K): U[4a+b, c, k] = (G g Gᵀ)[a, b] for the 3×3 filter g = weight[k, c]."""
    xp = get_array_module(weight)
    g = xp.asarray(G, dtype=weight.dtype)
    u = xp.einsum("ai,kcij,bj->abck", g, weight, g, optimize=True)
    return u.reshape(16, weight.shape[1], weight.shape[0])


def filter_transform_backward(dU, weight_shape):
    """dg = Gᵀ dU G for every (k, c): the adjoint of ``filter_transform``, (K, C, 3, 3)."""
    xp = get_array_module(dU)
    g = xp.asarray(G, dtype=dU.dtype)
    du = dU.reshape(4, 4, weight_shape[1], weight_shape[0])
    return xp.einsum("ai,abck,bj->kcij", g, du, g, optimize=True)


class WinogradConv2d(Function):
    def forward(ctx, x, weight, bias=None):
        n, c, h, w = x.shape
        kernels, xp = kernels_for(x), get_array_module(x)
        ctx.out_size = (h + 2 * ctx.padding[0] - 2, w + 2 * ctx.padding[1] - 2)
        if min(ctx.out_size) <= 0:
            raise ValueError(f"conv2d: input {h}x{w} is smaller than the kernel")
        ctx.tiles = tuple((size + 1) // 2 for size in ctx.out_size)
        V = kernels.winograd_input(x, ctx.padding, ctx.tiles)                  # (16, P, C)
        U = filter_transform(weight)                                            # (16, C, K)
        M = xp.matmul(V, U, out=kernels.winograd_empty(V.shape[1], U.shape[2], x.dtype))
        y = kernels.winograd_output(M, ctx.tiles, ctx.out_size)                # (N, K, OH, OW)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        ctx.save_for_backward(V, U)
        ctx.image_size, ctx.weight_shape = (h, w), weight.shape
        return y

    def backward(ctx, grad):
        V, U = ctx.saved_tensors
        kernels, xp = kernels_for(grad), get_array_module(grad)
        dM = kernels.winograd_output_backward(grad, ctx.tiles)                 # (16, P, K)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_w = filter_transform_backward(V.transpose(0, 2, 1) @ dM, ctx.weight_shape)
        if ctx.needs_input_grad[0]:
            dV = xp.matmul(dM, U.transpose(0, 2, 1),                            # (16, P, C)
                           out=kernels.winograd_empty(V.shape[1], V.shape[2], grad.dtype))
            grad_x = kernels.winograd_input_backward(dV, ctx.tiles, ctx.image_size,
                                                     ctx.padding)
        if ctx.needs_input_grad[2:] == (True,):
            grad_b = bias_gradient(grad)
        return grad_x, grad_w, grad_b
