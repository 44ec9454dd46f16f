"""Parameter updates over flat arrays, in place, one pass each (torch.optim's algorithms).

p is a parameter, g its gradient; every state array has p's shape. Hyperparameters arrive as
float64 scalars; the arithmetic keeps p's dtype where it is stored.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """g' = g + wd p;  b = g' (first step) or mu b + (1 - dampening) g';
    d = g' + mu b (nesterov) or b (momentum) or g';  p -= lr d."""
    for i in range(p.size):
        grad = g[i] + weight_decay * p[i]
        if momentum != 0.0:
            if first_step:
                buf[i] = grad
            else:
                buf[i] = momentum * buf[i] + (1.0 - dampening) * grad
            grad = grad + momentum * buf[i] if nesterov else buf[i]
        p[i] -= lr * grad


@njit(cache=True)
def adam_step(p, g, m, v, v_max, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step):
    """m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,  mh = m / (1 - b1^t),  vh = v / (1 - b2^t),
    p -= lr mh / (sqrt(vh) + eps).  Weight decay: g += wd p (Adam) or p *= 1 - lr wd (AdamW).
    amsgrad uses max over time of v in place of v."""
    bias1 = 1.0 - beta1 ** step
    bias2_sqrt = np.sqrt(1.0 - beta2 ** step)
    step_size = lr / bias1
    for i in range(p.size):
        grad = g[i]
        if decoupled:
            p[i] *= 1.0 - lr * weight_decay
        elif weight_decay != 0.0:
            grad = grad + weight_decay * p[i]
        m[i] = beta1 * m[i] + (1.0 - beta1) * grad
        v[i] = beta2 * v[i] + (1.0 - beta2) * grad * grad
        second = v[i]
        if amsgrad:
            if v[i] > v_max[i]:
                v_max[i] = v[i]
            second = v_max[i]
        p[i] -= step_size * m[i] / (np.sqrt(second) / bias2_sqrt + eps)


@njit(cache=True)
def adagrad_step(p, g, sum_sq, lr, lr_decay, weight_decay, eps, step):
    """g' = g + wd p;  s += g'^2;  p -= lr / (1 + (t - 1) lr_decay) * g' / (sqrt(s) + eps)."""
    clr = lr / (1.0 + (step - 1) * lr_decay)
    for i in range(p.size):
        grad = g[i] + weight_decay * p[i]
        sum_sq[i] += grad * grad
        p[i] -= clr * grad / (np.sqrt(sum_sq[i]) + eps)


@njit(cache=True)
def rmsprop_step(p, g, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, centered):
    """s = a s + (1 - a) g^2;  centered: m = a m + (1 - a) g, r = sqrt(s - m^2) + eps, else
    r = sqrt(s) + eps;  momentum: b = mu b + g / r, p -= lr b;  else p -= lr g / r."""
    for i in range(p.size):
        grad = g[i] + weight_decay * p[i]
        square_avg[i] = alpha * square_avg[i] + (1.0 - alpha) * grad * grad
        if centered:
            grad_avg[i] = alpha * grad_avg[i] + (1.0 - alpha) * grad
            denom = np.sqrt(square_avg[i] - grad_avg[i] * grad_avg[i]) + eps
        else:
            denom = np.sqrt(square_avg[i]) + eps
        if momentum > 0.0:
            buf[i] = momentum * buf[i] + grad / denom
            p[i] -= lr * buf[i]
        else:
            p[i] -= lr * grad / denom
