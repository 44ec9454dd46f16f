"""Parameter updates over flat arrays, in place, one pass each (torch.optim's algorithms).

p is a parameter, g its gradient; every state array has p's shape. Scalars arrive in p's dtype
(float32 training computes in float32, as PyTorch does); step-dependent factors such as Adam's
bias corrections are computed by the caller in float64. Large parameters update in parallel.

Decaying state (momentum buffers, moment estimates) is flushed to 0 when it turns subnormal
(|x| below the dtype's smallest normal number, 1.2e-38 in float32): x86 takes ~100 cycles for
each operation on a subnormal, and the first moment of a weight whose gradient stays 0 (a
Fashion-MNIST border pixel) turns subnormal after ~800 Adam steps, which slowed an MLP epoch
1.8x. The updates a flushed value would have made are below 1e-30.
"""
import numpy as np
from numba import njit

from . import size_dispatched


@njit(cache=True)
def normal_or_zero(x, tiny):
    """x, or 0 when x is subnormal (NaN stays NaN)."""
    return x - x if abs(x) < tiny else x


@size_dispatched
def sgd_step(loop):
    """g' = g + wd p;  b = g' (first step) or mu b + (1 - dampening) g';
    d = g' + mu b (nesterov) or b (momentum) or g';  p -= lr d."""
    def kernel(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
        tiny = np.finfo(p.dtype).tiny
        for i in loop(p.size):
            grad = g[i] + weight_decay * p[i]
            if momentum != 0:
                if first_step:
                    buf[i] = grad
                else:
                    buf[i] = normal_or_zero(momentum * buf[i] + (1 - dampening) * grad, tiny)
                grad = grad + momentum * buf[i] if nesterov else buf[i]
            p[i] -= lr * grad
    return kernel


@size_dispatched
def adam_step(loop):
    """m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)   (= lr mh / (sqrt(vh) + eps)).
    Weight decay: g += wd p (Adam) and/or p *= decay_factor = 1 - lr wd (AdamW).
    amsgrad uses the running maximum of v in place of v."""
    def kernel(p, g, m, v, v_max, step_size, beta1, beta2, eps, weight_decay, decay_factor,
               bias2_sqrt, amsgrad):
        tiny = np.finfo(p.dtype).tiny
        for i in loop(p.size):
            p[i] *= decay_factor
            grad = g[i] + weight_decay * p[i]
            m[i] = normal_or_zero(beta1 * m[i] + (1 - beta1) * grad, tiny)
            v[i] = normal_or_zero(beta2 * v[i] + (1 - beta2) * grad * grad, tiny)
            second = v[i]
            if amsgrad:
                if v[i] > v_max[i]:
                    v_max[i] = v[i]
                second = v_max[i]
            p[i] -= step_size * m[i] / (np.sqrt(second) / bias2_sqrt + eps)
    return kernel


@size_dispatched
def adagrad_step(loop):
    """g' = g + wd p;  s += g'^2;  p -= clr g' / (sqrt(s) + eps), clr = lr / (1 + (t - 1) lr_decay)."""
    def kernel(p, g, sum_sq, clr, weight_decay, eps):
        for i in loop(p.size):
            grad = g[i] + weight_decay * p[i]
            sum_sq[i] += grad * grad
            p[i] -= clr * grad / (np.sqrt(sum_sq[i]) + eps)
    return kernel


@size_dispatched
def rmsprop_step(loop):
    """s = a s + (1 - a) g^2;  centered: m = a m + (1 - a) g, r = sqrt(s - m^2) + eps, else
    r = sqrt(s) + eps;  momentum: b = mu b + g / r, p -= lr b;  else p -= lr g / r."""
    def kernel(p, g, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, centered):
        tiny = np.finfo(p.dtype).tiny
        for i in loop(p.size):
            grad = g[i] + weight_decay * p[i]
            square_avg[i] = normal_or_zero(alpha * square_avg[i] + (1 - alpha) * grad * grad, tiny)
            if centered:
                grad_avg[i] = normal_or_zero(alpha * grad_avg[i] + (1 - alpha) * grad, tiny)
                denom = np.sqrt(square_avg[i] - grad_avg[i] * grad_avg[i]) + eps
            else:
                denom = np.sqrt(square_avg[i]) + eps
            if momentum > 0:
                buf[i] = normal_or_zero(momentum * buf[i] + grad / denom, tiny)
                p[i] -= lr * buf[i]
            else:
                p[i] -= lr * grad / denom
    return kernel


@size_dispatched
def adadelta_step(loop):
    """g' = -+g + wd p (- when maximizing);  s = rho s + (1 - rho) g'^2;
    delta = sqrt(a + eps) / sqrt(s + eps) g';  a = rho a + (1 - rho) delta^2;  p -= lr delta."""
    def kernel(p, g, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
        tiny = np.finfo(p.dtype).tiny
        for i in loop(p.size):
            grad = (-g[i] if maximize else g[i]) + weight_decay * p[i]
            square_avg[i] = normal_or_zero(rho * square_avg[i] + (1 - rho) * grad * grad, tiny)
            delta = np.sqrt(acc_delta[i] + eps) / np.sqrt(square_avg[i] + eps) * grad
            acc_delta[i] = normal_or_zero(rho * acc_delta[i] + (1 - rho) * delta * delta, tiny)
            p[i] -= lr * delta
    return kernel


@size_dispatched
def adamax_step(loop):
    """g' = -+g + wd p;  m = b1 m + (1 - b1) g';  u = max(b2 u, |g'| + eps);
    p -= clr m / u,  clr = lr / (1 - b1^t)."""
    def kernel(p, g, exp_avg, exp_inf, clr, beta1, beta2, eps, weight_decay, maximize):
        tiny = np.finfo(p.dtype).tiny
        for i in loop(p.size):
            grad = (-g[i] if maximize else g[i]) + weight_decay * p[i]
            exp_avg[i] = normal_or_zero(beta1 * exp_avg[i] + (1 - beta1) * grad, tiny)
            decayed, current = beta2 * exp_inf[i], abs(grad) + eps
            exp_inf[i] = decayed if decayed > current else current  # NaN in grad stays NaN
            p[i] -= clr * exp_avg[i] / exp_inf[i]
    return kernel


@size_dispatched
def nadam_step(loop):
    """NAdam (Dozat): p *= decay_factor (1 - lr wd, decoupled decay); g' = -+g + wd p (coupled);
    m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;  r = sqrt(v) / sqrt(1 - b2^t) + eps;
    p -= c_grad g' / r + c_avg m / r,  with mu_t = b1 (1 - 0.96^(t psi) / 2) (psi the momentum
    decay), c_grad = lr (1 - mu_t) / (1 - prod_{k<=t} mu_k), c_avg = lr mu_{t+1} /
    (1 - prod_{k<=t+1} mu_k) (factors computed by the caller)."""
    def kernel(p, g, m, v, c_grad, c_avg, beta1, beta2, eps, weight_decay, decay_factor,
               bias2_sqrt, maximize):
        tiny = np.finfo(p.dtype).tiny
        for i in loop(p.size):
            p[i] *= decay_factor
            grad = (-g[i] if maximize else g[i]) + weight_decay * p[i]
            m[i] = normal_or_zero(beta1 * m[i] + (1 - beta1) * grad, tiny)
            v[i] = normal_or_zero(beta2 * v[i] + (1 - beta2) * grad * grad, tiny)
            denom = np.sqrt(v[i]) / bias2_sqrt + eps
            p[i] -= c_grad * grad / denom
            p[i] -= c_avg * m[i] / denom
    return kernel
