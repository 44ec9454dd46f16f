"""Your own op, compiled: Swish with a learnable beta, from kernels to a trained model.

The worked example of docs/custom_ops.md, which walks through it step by step::

    y = x s,   s = sigmoid(beta x) = 1 / (1 + e^(-beta x))

With ds/dz = s (1 - s) for z = beta x, the chain rule gives the backward pass:

    dy/dx    = s + beta x s (1 - s)      so  dL/dx    = dL/dy (s + beta x s (1 - s))
    dy/dbeta = x^2 s (1 - s)             so  dL/dbeta = sum over all elements of dL/dy x^2 s (1 - s)

(beta is one number shared by every element, so its gradient sums the elements' terms.)

Pieces, in the order the doc builds them:
1. cpu kernels: ``@njit(cache=True, parallel=True)`` loops over the flat arrays with ``prange``;
2. cuda kernels: ``@cuda.jit`` twins with a grid-stride loop, built on first use;
3. ``KERNELS``: each device's (forward, backward) over arrays, the one place devices meet;
4. ``SwishFunction(minidl.Function)``: forward/backward over arrays, picking ``ctx.device``'s pair;
5. ``swish(input, beta)`` and the layer ``Swish(beta=1.0)`` holding beta as a Parameter;
6. ``check_gradients()`` (minidl.utils.gradcheck in float64) and ``train()`` (a small classifier).

Run ``python -m models.swish`` (add ``--device cuda`` on a GPU) to check and train it.

s is computed as 1/2 + 1/2 tanh(z / 2), equal to the logistic and free of overflow: e^(-z)
overflows for z < -709, and under numba's CUDA simulator (plain Python) that raises.
Both kernels compute in float64 and store in the input's dtype.
"""
import argparse
import functools
import math

import numpy as np
from numba import config, njit, prange

import minidl
from minidl import nn, optim
from minidl.device import like
from minidl.function import Function, require_float
from minidl.meta import MetaArray
from minidl.utils import gradcheck


# ---------------------------------------------------------------- 1. cpu kernels (flat arrays)

@njit(cache=True, parallel=True)
def swish_forward_cpu(x, beta):
    """y[i] = x[i] s[i], s = sigmoid(beta x[i])."""
    b = np.float64(beta[0])
    y = np.empty_like(x)
    for i in prange(x.size):
        v = np.float64(x[i])
        y[i] = v * (0.5 + 0.5 * math.tanh(0.5 * b * v))
    return y


@njit(cache=True, parallel=True)
def swish_backward_cpu(grad, x, beta):
    """(dx, dbeta): dx[i] = g (s + beta x s (1 - s)); dbeta = sum_i g x^2 s (1 - s) (float64;
    numba turns ``dbeta +=`` inside prange into a race-free parallel reduction)."""
    b = np.float64(beta[0])
    dx = np.empty_like(x)
    dbeta = 0.0
    for i in prange(x.size):
        v, g = np.float64(x[i]), np.float64(grad[i])
        s = 0.5 + 0.5 * math.tanh(0.5 * b * v)
        slope = s * (1.0 - s)
        dx[i] = g * (s + b * v * slope)
        dbeta += g * v * v * slope
    return dx, dbeta


def _cpu_forward(x, beta):
    return swish_forward_cpu(x.reshape(-1), beta).reshape(x.shape)


def _cpu_backward(grad, x, beta):
    dx, dbeta = swish_backward_cpu(grad.reshape(-1), x.reshape(-1), beta)
    return dx.reshape(x.shape), np.array([dbeta], dtype=beta.dtype)


# ---------------------------------------------------------------- 2. cuda kernels (built on first use)

cuda = None  # numba.cuda, imported by _cuda_kernels(): a module global, as numba's CUDA simulator needs


@functools.lru_cache(maxsize=None)
def _cuda_kernels():
    """(forward, backward) ``@cuda.jit`` kernels. Built on first use, so that importing this
    module needs neither a GPU nor numba's CUDA support."""
    global cuda
    from numba import cuda

    @cuda.jit
    def forward(x, beta, y):
        b = float(beta[0])
        i = cuda.grid(1)
        while i < x.size:  # grid-stride loop: correct for any launch shape
            v = float(x[i])
            y[i] = v * (0.5 + 0.5 * math.tanh(0.5 * b * v))
            i += cuda.gridsize(1)

    @cuda.jit
    def backward(grad, x, beta, dx, partial):
        """dx as on the cpu; each thread's share of dbeta goes to partial[thread]."""
        b = float(beta[0])
        thread = cuda.grid(1)
        i = thread
        total = 0.0
        while i < x.size:
            v, g = float(x[i]), float(grad[i])
            s = 0.5 + 0.5 * math.tanh(0.5 * b * v)
            slope = s * (1.0 - s)
            dx[i] = g * (s + b * v * slope)
            total += g * v * v * slope
            i += cuda.gridsize(1)
        partial[thread] = total

    return forward, backward


def _launch_shape(n):
    """(blocks, threads): a few small blocks under the simulator (one Python thread per CUDA
    thread), enough 256-thread blocks to cover n on a GPU."""
    if config.ENABLE_CUDASIM:
        return 2, 8
    return max(1, min(math.ceil(n / 256), 1024)), 256


def _cuda_forward(x, beta):
    forward, _ = _cuda_kernels()
    y = np.empty_like(x)  # x is a minidl CudaArray: numpy's functions allocate on the GPU
    blocks, threads = _launch_shape(x.size)
    forward[blocks, threads](x.flat(), beta.flat(), y.flat())
    return y


def _cuda_backward(grad, x, beta):
    _, backward = _cuda_kernels()
    dx = np.empty_like(x)
    blocks, threads = _launch_shape(x.size)
    partial = np.zeros(blocks * threads, dtype=np.float64, like=x)
    backward[blocks, threads](grad.flat(), x.flat(), beta.flat(), dx.flat(), partial.flat())
    return dx, partial.sum().reshape(1).astype(beta.dtype)  # summed on the GPU


# ---------------------------------------------------------------- 3. the registry

KERNELS = {"cpu": (_cpu_forward, _cpu_backward), "cuda": (_cuda_forward, _cuda_backward)}


def _kernels(device):
    """The (forward, backward) pair of ``device`` (a minidl Device compares equal to its name)."""
    if device not in KERNELS:
        raise NotImplementedError(f"Swish has no kernels for the {device} device; it has "
                                  f"{', '.join(KERNELS)}: move the model with .to('cpu')")
    return KERNELS[device]


# ---------------------------------------------------------------- 4. the Function

class SwishFunction(Function):
    """y = x sigmoid(beta x); backward formulas in the module docstring."""

    @staticmethod
    def forward(ctx, x, beta):
        x = np.ascontiguousarray(x, like=like(x))  # kernels take C-contiguous arrays
        ctx.save_for_backward(x, beta)
        return _kernels(ctx.device)[0](x, beta)

    @staticmethod
    def backward(ctx, grad):
        x, beta = ctx.saved_arrays
        grad = np.ascontiguousarray(grad, dtype=x.dtype, like=like(x))
        dx, dbeta = _kernels(ctx.device)[1](grad, x, beta)
        return dx, dbeta  # one gradient per forward input, in order

    @staticmethod
    def infer(x, beta):
        """The meta device's forward (shape and dtype only), which minidl.summary uses."""
        return MetaArray(x.shape, x.dtype)


# ---------------------------------------------------------------- 5. function and layer

def swish(input, beta):
    """y = input * sigmoid(beta * input), beta a Tensor of shape (1,)."""
    require_float("swish", input)
    if tuple(beta.shape) != (1,):
        raise ValueError(f"swish: beta must have shape (1,), got {tuple(beta.shape)}")
    return SwishFunction.apply(input, beta)


class Swish(nn.Module):
    """y = x sigmoid(beta x) with a learnable beta (one for the layer, ``beta`` at init):
    beta = 1 is SiLU, beta -> infinity approaches ReLU, beta = 0 gives x / 2."""

    def __init__(self, beta=1.0, dtype=np.float32):
        super().__init__()
        self.beta = nn.Parameter(np.full((1,), beta, dtype=dtype))

    def forward(self, input):
        return swish(input, self.beta)


# ---------------------------------------------------------------- 6. check it, train it

def check_gradients(shape=(3, 4)):
    """Compare SwishFunction's backward with central differences in float64 on the cpu (raises
    AssertionError naming the input if they differ)."""
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal(shape) * 3, dtype=np.float64, requires_grad=True)
    beta = minidl.tensor([0.7], dtype=np.float64, requires_grad=True)
    return gradcheck(swish, [x, beta])


def xor_data(n=256, seed=0):
    """Points in [-1, 1]^2, class 1 where x0 x1 > 0: no straight line separates the classes."""
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2)).astype(np.float32)
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.int64)


def build(hidden=16):
    return nn.Sequential(nn.Linear(2, hidden), Swish(), nn.Linear(hidden, 2))


def train(device="cpu", steps=150, n=256, hidden=16, lr=0.03, seed=0):
    """Full-batch training of ``build(hidden)`` on ``xor_data(n)``; returns (losses, model)."""
    minidl.manual_seed(seed)
    model = build(hidden).to(device)
    x, y = (minidl.tensor(a, device=device) for a in xor_data(n, seed))
    optimizer = optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, model


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check and train the Swish example op")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    print(f"gradcheck (cpu, float64): {check_gradients()}")
    losses, model = train(args.device, steps=args.steps)
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} in {args.steps} steps; "
          f"beta 1.0 -> {model[1].beta.item():.4f}")


if __name__ == "__main__":
    main()
