"""The optimizers of the course notes, with torch.optim's names, defaults and algorithms."""
import math

from .optimizer import Optimizer, check_flag, check_number


def _scalars(param, *values):
    """Hyperparameters in the parameter's dtype, so float32 updates stay in float32."""
    return tuple(param.dtype.type(v) for v in values)


def _check(optimizer, group, *keys):
    for key in keys:
        check_number(type(optimizer).__name__, key, group[key])


def _check_betas(optimizer, group):
    """The group's betas: a pair of numbers, each in [0, 1)."""
    name, betas = type(optimizer).__name__, group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{name}: betas must be a pair of numbers, got {betas!r}")
    for i, beta in enumerate(betas):
        check_number(name, f"betas[{i}]", beta, upper=1.0)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay."""

    state_buffers = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        _check(self, group, "momentum", "dampening", "weight_decay")
        check_flag("SGD", "nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def update(self, kernels, group, param, grad, state):
        first = "momentum_buffer" not in state
        buf = self._buffer(state, "momentum_buffer", param) if group["momentum"] else param[:0]
        kernels.sgd_step(param, grad, buf, *_scalars(param, group["lr"], group["momentum"],
                                                     group["dampening"], group["weight_decay"]),
                         bool(group["nesterov"]), first)


class Adam(Optimizer):
    """Adam (Kingma & Ba): bias-corrected first and second moments; formula in kernels optim."""

    decoupled_weight_decay = False
    state_buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    state_counters = ("step",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        _check(self, group, "eps", "weight_decay")
        _check_betas(self, group)
        check_flag(type(self).__name__, "amsgrad", group["amsgrad"])

    def update(self, kernels, group, param, grad, state):
        state["step"] = state.get("step", 0) + 1
        m = self._buffer(state, "exp_avg", param)
        v = self._buffer(state, "exp_avg_sq", param)
        v_max = self._buffer(state, "max_exp_avg_sq", param) if group["amsgrad"] else param[:0]
        beta1, beta2 = group["betas"]
        lr, weight_decay, step = group["lr"], group["weight_decay"], state["step"]
        coupled_decay, decay_factor = ((0.0, 1.0 - lr * weight_decay) if self.decoupled_weight_decay
                                       else (weight_decay, 1.0))
        kernels.adam_step(param, grad, m, v, v_max,
                          *_scalars(param, lr / (1.0 - beta1 ** step), beta1, beta2, group["eps"],
                                    coupled_decay, decay_factor, math.sqrt(1.0 - beta2 ** step)),
                          bool(group["amsgrad"]))


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr wd before the Adam step (Loshchilov & Hutter)."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class Adagrad(Optimizer):
    """Adagrad: per-coordinate step lr / sqrt(sum of squared gradients).

    The course notes show it is Adam's limit for beta1 = 0, beta2 -> 1, lr = eta0 / sqrt(t).
    """

    state_buffers = ("sum",)
    state_counters = ("step",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        _check(self, group, "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def update(self, kernels, group, param, grad, state):
        state["step"] = state.get("step", 0) + 1
        total = self._buffer(state, "sum", param, group["initial_accumulator_value"])
        clr = group["lr"] / (1.0 + (state["step"] - 1) * group["lr_decay"])
        kernels.adagrad_step(param, grad, total,
                             *_scalars(param, clr, group["weight_decay"], group["eps"]))


class RMSprop(Optimizer):
    """RMSprop (Hinton): divide by a running RMS of the gradient; optional centering and momentum."""

    state_buffers = ("square_avg", "grad_avg", "momentum_buffer")
    state_counters = ("step",)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        _check(self, group, "alpha", "eps", "weight_decay", "momentum")
        check_flag("RMSprop", "centered", group["centered"])

    def update(self, kernels, group, param, grad, state):
        state["step"] = state.get("step", 0) + 1
        square_avg = self._buffer(state, "square_avg", param)
        grad_avg = self._buffer(state, "grad_avg", param) if group["centered"] else param[:0]
        buf = self._buffer(state, "momentum_buffer", param) if group["momentum"] > 0 else param[:0]
        kernels.rmsprop_step(param, grad, square_avg, grad_avg, buf,
                             *_scalars(param, group["lr"], group["alpha"], group["eps"],
                                       group["weight_decay"], group["momentum"]),
                             bool(group["centered"]))


class Adadelta(Optimizer):
    """Adadelta (Zeiler): the step is the gradient rescaled by RMS(past steps) / RMS(gradients),
    so it carries the parameter's units; lr (default 1) only scales it. Formula in kernels optim."""

    state_buffers = ("square_avg", "acc_delta")
    state_counters = ("step",)

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        _check(self, group, "eps", "weight_decay")
        check_number("Adadelta", "rho", group["rho"], upper=1.0, closed=True)
        check_flag("Adadelta", "maximize", group["maximize"])

    def update(self, kernels, group, param, grad, state):
        state["step"] = state.get("step", 0) + 1
        square_avg = self._buffer(state, "square_avg", param)
        acc_delta = self._buffer(state, "acc_delta", param)
        kernels.adadelta_step(param, grad, square_avg, acc_delta,
                              *_scalars(param, group["lr"], group["rho"], group["eps"],
                                        group["weight_decay"]),
                              bool(group["maximize"]))


class Adamax(Optimizer):
    """Adamax (Kingma & Ba): Adam with the infinity norm, u_t = max(b2 u_{t-1}, |g_t|), in place
    of the second moment; only the first moment is bias-corrected. Formula in kernels optim."""

    state_buffers = ("exp_avg", "exp_inf")
    state_counters = ("step",)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        _check(self, group, "eps", "weight_decay")
        _check_betas(self, group)
        check_flag("Adamax", "maximize", group["maximize"])

    def update(self, kernels, group, param, grad, state):
        state["step"] = state.get("step", 0) + 1
        exp_avg = self._buffer(state, "exp_avg", param)
        exp_inf = self._buffer(state, "exp_inf", param)
        beta1, beta2 = group["betas"]
        clr = group["lr"] / (1.0 - beta1 ** state["step"])
        kernels.adamax_step(param, grad, exp_avg, exp_inf,
                            *_scalars(param, clr, beta1, beta2, group["eps"],
                                      group["weight_decay"]),
                            bool(group["maximize"]))


class NAdam(Optimizer):
    """NAdam (Dozat): Adam with Nesterov momentum, the first moment looked one step ahead, and
    the momentum warmed up by mu_t = b1 (1 - 0.96^(t momentum_decay) / 2); the running product
    of the mu_t is state ``mu_product``. ``decoupled_weight_decay`` decays as AdamW does
    (NAdamW). Formula in kernels optim."""

    state_buffers = ("exp_avg", "exp_avg_sq")
    state_counters = ("step",)
    state_scalars = ("mu_product",)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        _check(self, group, "eps", "weight_decay", "momentum_decay")
        _check_betas(self, group)
        check_flag("NAdam", "decoupled_weight_decay", group["decoupled_weight_decay"])
        check_flag("NAdam", "maximize", group["maximize"])

    def update(self, kernels, group, param, grad, state):
        step = state["step"] = state.get("step", 0) + 1
        m = self._buffer(state, "exp_avg", param)
        v = self._buffer(state, "exp_avg_sq", param)
        beta1, beta2 = group["betas"]
        lr, weight_decay, psi = group["lr"], group["weight_decay"], group["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        mu_product = state["mu_product"] = state.get("mu_product", 1.0) * mu
        coupled_decay, decay_factor = ((0.0, 1.0 - lr * weight_decay)
                                       if group["decoupled_weight_decay"] else (weight_decay, 1.0))
        kernels.nadam_step(param, grad, m, v,
                           *_scalars(param, lr * (1.0 - mu) / (1.0 - mu_product),
                                     lr * mu_next / (1.0 - mu_product * mu_next), beta1, beta2,
                                     group["eps"], coupled_decay, decay_factor,
                                     math.sqrt(1.0 - beta2 ** step)),
                           bool(group["maximize"]))
