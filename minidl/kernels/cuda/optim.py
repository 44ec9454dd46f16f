"""Parameter updates on the GPU over flat arrays, in place: one thread per element (grid-stride).

The same functions, signatures and formulas as ``kernels.cpu.optim`` (see its docstrings);
scalars arrive in the parameter's dtype, so float32 training computes in float32.
"""
import math

from ._runtime import kernel_builder
from .array import CudaArray
from .elementwise import launch

cuda = None  # numba.cuda, bound by kernel_builder on first use


def _flat(*arrays):
    """The flat device arrays the kernel updates in place: a host array here would be updated
    in a copy and the update lost, so it is refused."""
    for a in arrays:
        if not isinstance(a, CudaArray):
            raise TypeError(f"cuda optimizer step: got a host array of shape {a.shape} for a cuda "
                            "parameter; optimizer state must live on the parameter's device")
    return tuple(a.ascontiguous().flat() for a in arrays)


@kernel_builder
def _sgd():
    @cuda.jit
    def kernel(n, p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            grad = g[i] + weight_decay * p[i]
            if momentum != 0:
                if first_step:
                    buf[i] = grad
                else:
                    buf[i] = momentum * buf[i] + (1 - dampening) * grad
                grad = grad + momentum * buf[i] if nesterov else buf[i]
            p[i] -= lr * grad
            i += step
    return kernel


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """g' = g + wd p;  b = g' (first step) or mu b + (1 - dampening) g';
    d = g' + mu b (nesterov) or b (momentum) or g';  p -= lr d."""
    p, g, buf = _flat(p, g, buf)
    launch(_sgd(), p.shape[0], p, g, buf, lr, momentum, dampening, weight_decay,
           bool(nesterov), bool(first_step))


@kernel_builder
def _adam():
    @cuda.jit
    def kernel(n, p, g, m, v, v_max, step_size, beta1, beta2, eps, weight_decay, decay_factor,
               bias2_sqrt, amsgrad):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            p[i] *= decay_factor
            grad = g[i] + weight_decay * p[i]
            m[i] = beta1 * m[i] + (1 - beta1) * grad
            v[i] = beta2 * v[i] + (1 - beta2) * grad * grad
            second = v[i]
            if amsgrad:
                if v[i] > v_max[i]:
                    v_max[i] = v[i]
                second = v_max[i]
            p[i] -= step_size * m[i] / (math.sqrt(second) / bias2_sqrt + eps)
            i += step
    return kernel


def adam_step(p, g, m, v, v_max, step_size, beta1, beta2, eps, weight_decay, decay_factor,
              bias2_sqrt, amsgrad):
    """Adam / AdamW (decay_factor = 1 - lr wd) / amsgrad; formula in kernels.cpu.optim."""
    p, g, m, v, v_max = _flat(p, g, m, v, v_max)
    launch(_adam(), p.shape[0], p, g, m, v, v_max, step_size, beta1, beta2, eps, weight_decay,
           decay_factor, bias2_sqrt, bool(amsgrad))


@kernel_builder
def _adagrad():
    @cuda.jit
    def kernel(n, p, g, sum_sq, clr, weight_decay, eps):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            grad = g[i] + weight_decay * p[i]
            sum_sq[i] += grad * grad
            p[i] -= clr * grad / (math.sqrt(sum_sq[i]) + eps)
            i += step
    return kernel


def adagrad_step(p, g, sum_sq, clr, weight_decay, eps):
    """g' = g + wd p;  s += g'^2;  p -= clr g' / (sqrt(s) + eps)."""
    p, g, sum_sq = _flat(p, g, sum_sq)
    launch(_adagrad(), p.shape[0], p, g, sum_sq, clr, weight_decay, eps)


@kernel_builder
def _rmsprop():
    @cuda.jit
    def kernel(n, p, g, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum,
               centered):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            grad = g[i] + weight_decay * p[i]
            square_avg[i] = alpha * square_avg[i] + (1 - alpha) * grad * grad
            if centered:
                grad_avg[i] = alpha * grad_avg[i] + (1 - alpha) * grad
                denom = math.sqrt(square_avg[i] - grad_avg[i] * grad_avg[i]) + eps
            else:
                denom = math.sqrt(square_avg[i]) + eps
            if momentum > 0:
                buf[i] = momentum * buf[i] + grad / denom
                p[i] -= lr * buf[i]
            else:
                p[i] -= lr * grad / denom
            i += step
    return kernel


def rmsprop_step(p, g, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, centered):
    """s = a s + (1 - a) g^2; centered / momentum variants; formula in kernels.cpu.optim."""
    p, g, square_avg, grad_avg, buf = _flat(p, g, square_avg, grad_avg, buf)
    launch(_rmsprop(), p.shape[0], p, g, square_avg, grad_avg, buf, lr, alpha, eps,
           weight_decay, momentum, bool(centered))


@kernel_builder
def _adadelta():
    @cuda.jit
    def kernel(n, p, g, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            grad = (-g[i] if maximize else g[i]) + weight_decay * p[i]
            square_avg[i] = rho * square_avg[i] + (1 - rho) * grad * grad
            delta = math.sqrt(acc_delta[i] + eps) / math.sqrt(square_avg[i] + eps) * grad
            acc_delta[i] = rho * acc_delta[i] + (1 - rho) * delta * delta
            p[i] -= lr * delta
            i += step
    return kernel


def adadelta_step(p, g, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    """s = rho s + (1 - rho) g^2, delta = sqrt(a + eps) / sqrt(s + eps) g; formula in
    kernels.cpu.optim."""
    p, g, square_avg, acc_delta = _flat(p, g, square_avg, acc_delta)
    launch(_adadelta(), p.shape[0], p, g, square_avg, acc_delta, lr, rho, eps, weight_decay,
           bool(maximize))


@kernel_builder
def _adamax():
    @cuda.jit
    def kernel(n, p, g, exp_avg, exp_inf, clr, beta1, beta2, eps, weight_decay, maximize):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            grad = (-g[i] if maximize else g[i]) + weight_decay * p[i]
            exp_avg[i] = beta1 * exp_avg[i] + (1 - beta1) * grad
            decayed = beta2 * exp_inf[i]
            current = abs(grad) + eps
            exp_inf[i] = decayed if decayed > current else current
            p[i] -= clr * exp_avg[i] / exp_inf[i]
            i += step
    return kernel


def adamax_step(p, g, exp_avg, exp_inf, clr, beta1, beta2, eps, weight_decay, maximize):
    """m = b1 m + (1 - b1) g, u = max(b2 u, |g| + eps), p -= clr m / u; formula in
    kernels.cpu.optim."""
    p, g, exp_avg, exp_inf = _flat(p, g, exp_avg, exp_inf)
    launch(_adamax(), p.shape[0], p, g, exp_avg, exp_inf, clr, beta1, beta2, eps, weight_decay,
           bool(maximize))


@kernel_builder
def _nadam():
    @cuda.jit
    def kernel(n, p, g, m, v, c_grad, c_avg, beta1, beta2, eps, weight_decay, decay_factor,
               bias2_sqrt, maximize):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            p[i] *= decay_factor
            grad = (-g[i] if maximize else g[i]) + weight_decay * p[i]
            m[i] = beta1 * m[i] + (1 - beta1) * grad
            v[i] = beta2 * v[i] + (1 - beta2) * grad * grad
            denom = math.sqrt(v[i]) / bias2_sqrt + eps
            p[i] -= c_grad * grad / denom
            p[i] -= c_avg * m[i] / denom
            i += step
    return kernel


def nadam_step(p, g, m, v, c_grad, c_avg, beta1, beta2, eps, weight_decay, decay_factor,
               bias2_sqrt, maximize):
    """NAdam with momentum-decay factors c_grad, c_avg from the caller; formula in
    kernels.cpu.optim."""
    p, g, m, v = _flat(p, g, m, v)
    launch(_nadam(), p.shape[0], p, g, m, v, c_grad, c_avg, beta1, beta2, eps, weight_decay,
           decay_factor, bias2_sqrt, bool(maximize))
