"""Learning-rate schedules (closed forms), stepped once per epoch as in PyTorch.

t is ``last_epoch``, lr_0 the group's initial lr:
StepLR lr_0 gamma^floor(t / step_size);  CosineAnnealingLR eta_min + (lr_0 - eta_min)(1 + cos(pi t / T_max)) / 2;
LambdaLR lr_0 lr_lambda(t);  MultiStepLR lr_0 gamma^(number of milestones <= t);
ExponentialLR lr_0 gamma^t;  LinearLR lr_0 (s + (e - s) min(t, T) / T);
OneCycleLR and SequentialLR: see their docstrings. ReduceLROnPlateau is not a function of t:
it divides the lr when a metric stops improving (its docstring).

A schedule's ``state_dict`` holds plain numbers and lists (a checkpoint stores it as JSON);
the hyperparameters are the constructor's and are not saved.
"""
import bisect
import math
import numbers

from .optimizer import check_integer, check_number


class LRScheduler:
    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr, epoch):
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        """Restore ``state`` (from ``state_dict``), checked first by ``check_state_dict``."""
        self.last_epoch, self.base_lrs = self.check_state_dict(state)

    def check_state_dict(self, state):
        """(last_epoch, base_lrs) of ``state``; ValueError (TypeError for a wrong type) naming
        the entry unless last_epoch is an int >= 0 and base_lrs one lr >= 0 per parameter group."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict) or set(state) != {"last_epoch", "base_lrs"}:
            got = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{name}: expected a dict with keys 'base_lrs' and 'last_epoch', "
                             f"got {got}")
        last_epoch, base_lrs = state["last_epoch"], state["base_lrs"]
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral):
            raise TypeError(f"{name}: last_epoch must be an int, got {last_epoch!r:.100}")
        if last_epoch < 0:
            raise ValueError(f"{name}: last_epoch must be >= 0, got {last_epoch}")
        groups = len(self.optimizer.param_groups)
        if not isinstance(base_lrs, (list, tuple)) or len(base_lrs) != groups:
            raise ValueError(f"{name}: base_lrs must hold one lr per parameter group ({groups}), "
                             f"got {base_lrs!r:.200}")
        for i, lr in enumerate(base_lrs):
            check_number(name, f"base_lrs[{i}]", lr)
        return int(last_epoch), [float(lr) for lr in base_lrs]


class StepLR(LRScheduler):
    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be > 0, got {T_max}")
        self.T_max, self.eta_min = T_max, float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LambdaLR(LRScheduler):
    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.lr_lambda(epoch)


class MultiStepLR(LRScheduler):
    """lr_0 gamma^k, k the number of ``milestones`` <= t (a milestone given twice counts twice)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        milestones = list(milestones)
        for i, milestone in enumerate(milestones):
            check_integer("MultiStepLR", f"milestones[{i}]", milestone)
        check_number("MultiStepLR", "gamma", gamma)
        self.milestones, self.gamma = sorted(milestones), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class ExponentialLR(LRScheduler):
    """lr_0 gamma^t."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        check_number("ExponentialLR", "gamma", gamma)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** epoch


class LinearLR(LRScheduler):
    """lr_0 (s + (e - s) min(t, T) / T): the factor goes linearly from s = ``start_factor`` to
    e = ``end_factor`` over T = ``total_iters`` steps, then stays (T = 0: s throughout)."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        check_number("LinearLR", "start_factor", start_factor, upper=1.0, closed=True)
        if start_factor == 0:
            raise ValueError("LinearLR: invalid start_factor 0 (must be in (0, 1])")
        check_number("LinearLR", "end_factor", end_factor, upper=1.0, closed=True)
        check_integer("LinearLR", "total_iters", total_iters)
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        progress = min(self.total_iters, epoch) / self.total_iters if self.total_iters else 0.0
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


def _per_group(owner, key, optimizer, value):
    """``value`` for each parameter group: a list of one per group, or one number for all."""
    groups = len(optimizer.param_groups)
    values = list(value) if isinstance(value, (list, tuple)) else [value] * groups
    if len(values) != groups:
        raise ValueError(f"{owner}: expected {groups} values for {key} (one per parameter group), "
                         f"got {len(values)}")
    for i, v in enumerate(values):
        check_number(owner, key if groups == 1 else f"{key}[{i}]", v)
    return [float(v) for v in values]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), stepped once per batch for ``total_steps`` (or
    ``epochs * steps_per_epoch``) steps.

    With lr_0 = max_lr / div_factor and lr_min = lr_0 / final_div_factor, the lr is annealed
    (cos: end + (start - end)(1 + cos(pi p)) / 2; linear: start + (end - start) p, p the
    fraction of the phase done) from lr_0 up to max_lr over the first pct_start of the steps
    (phase end at step pct_start T - 1), then down to lr_min at step T - 1. ``three_phase``:
    up to max_lr (until pct_start T - 1), back to lr_0 (until 2 pct_start T - 2), then down to
    lr_min. With ``cycle_momentum`` the momentum (SGD's momentum, Adam's beta1) goes the
    opposite way between max_momentum and base_momentum (max_momentum in the third phase).
    The group keys ``initial_lr``, ``max_lr``, ``min_lr``, ``max_momentum`` and
    ``base_momentum`` are set, as torch does."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        name = "OneCycleLR"
        if total_steps is not None:
            check_integer(name, "total_steps", total_steps, minimum=1)
            self.total_steps = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            check_integer(name, "epochs", epochs, minimum=1)
            check_integer(name, "steps_per_epoch", steps_per_epoch, minimum=1)
            self.total_steps = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError(f"{name}: you must define either total_steps OR (epochs AND "
                             "steps_per_epoch)")
        check_number(name, "pct_start", pct_start, upper=1.0, closed=True)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be one of 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        for key, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            check_number(name, key, value)
            if value == 0:
                raise ValueError(f"{name}: invalid {key} 0 (must be > 0)")
        T, pct = self.total_steps, float(pct_start)
        # (last step of the phase, lr from, lr to, momentum from, momentum to)
        if three_phase:
            self.phases = [(pct * T - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                           (2 * pct * T - 2, "max_lr", "initial_lr", "base_momentum",
                            "max_momentum"),
                           (T - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self.phases = [(pct * T - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                           (T - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, bool(cycle_momentum)
        max_lrs = _per_group(name, "max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, top in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"{name}: the optimizer ({type(optimizer).__name__}) must have a "
                                 "momentum or betas with cycle_momentum=True")
            self.use_beta1 = "betas" in optimizer.defaults
            tops = _per_group(name, "max_momentum", optimizer, max_momentum)
            bases = _per_group(name, "base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for group, top, base in zip(optimizer.param_groups, tops, bases):
                    self._set_momentum(group, top)
                    group["max_momentum"], group["base_momentum"] = top, base
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def step(self):
        if self.last_epoch + 1 > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {self.last_epoch + 1} times; the "
                             f"specified number of total steps is {self.total_steps}")
        self.last_epoch += 1
        t = self.last_epoch
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr_from, lr_to, momentum_from, momentum_to) in enumerate(self.phases):
                if t <= end or i == len(self.phases) - 1:
                    pct = (t - start) / (end - start)
                    group["lr"] = self._anneal(group[lr_from], group[lr_to], pct)
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[momentum_from],
                                                               group[momentum_to], pct))
                    break
                start = end


class SequentialLR(LRScheduler):
    """``schedulers[i]`` runs from ``milestones[i - 1]`` (0 for the first) to ``milestones[i]``,
    each restarted at its milestone (its own t counted from 0 there): lr(t) =
    schedulers[i].lr(t - milestones[i - 1]). Each schedule's lr is from its lr_0 (the group's
    initial lr), not from where the previous one ended, as in torch for closed-form schedules."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        name = "SequentialLR"
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers:
            raise ValueError(f"{name} expects at least one scheduler, but got no scheduler")
        for i, scheduler in enumerate(schedulers):
            if isinstance(scheduler, ReduceLROnPlateau):
                raise ValueError(f"{name} does not support ReduceLROnPlateau (its step needs a "
                                 f"metric), but got one at index {i} of schedulers")
            if not isinstance(scheduler, LRScheduler):
                raise TypeError(f"{name}: schedulers[{i}] is a {type(scheduler).__name__}, not an "
                                "LRScheduler")
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"{name}: schedulers[{i}] ({type(scheduler).__name__}) belongs to "
                                 f"another optimizer than {type(optimizer).__name__}")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{name}: expected one milestone fewer than schedulers, got "
                             f"{len(schedulers)} schedulers and {len(milestones)} milestones")
        for i, milestone in enumerate(milestones):
            check_integer(name, f"milestones[{i}]", milestone)
        self.optimizer, self.schedulers, self.milestones = optimizer, schedulers, milestones
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch + 1
        # each scheduler took a step when it was made: undo those; the first one starts now
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for scheduler in schedulers:
            scheduler.last_epoch = 0  # restarted at its milestone
        first = schedulers[bisect.bisect_right(milestones, 0)]
        first.last_epoch = -1
        first.step()

    def step(self):
        self.last_epoch += 1
        index = bisect.bisect_right(self.milestones, self.last_epoch)
        scheduler = self.schedulers[index]
        if index > 0 and self.milestones[index - 1] == self.last_epoch:
            scheduler.last_epoch = -1
        scheduler.step()

    def state_dict(self):
        return {"last_epoch": self.last_epoch,
                "schedulers": [scheduler.state_dict() for scheduler in self.schedulers]}

    def load_state_dict(self, state):
        last_epoch, states = self.check_state_dict(state)
        for scheduler, own in zip(self.schedulers, states):
            scheduler.load_state_dict(own)
        self.last_epoch = last_epoch

    def check_state_dict(self, state):
        """(last_epoch, [each scheduler's state]); ValueError (TypeError for a wrong type) naming
        the entry unless last_epoch is an int >= 0 and each scheduler accepts its state."""
        name = "SequentialLR.load_state_dict"
        if not isinstance(state, dict) or set(state) != {"last_epoch", "schedulers"}:
            got = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{name}: expected a dict with keys 'last_epoch' and 'schedulers', "
                             f"got {got}")
        check_integer(name, "last_epoch", state["last_epoch"])
        states = state["schedulers"]
        if not isinstance(states, (list, tuple)) or len(states) != len(self.schedulers):
            raise ValueError(f"{name}: 'schedulers' must hold the state of each of the "
                             f"{len(self.schedulers)} schedulers, got {states!r:.200}")
        for i, (scheduler, own) in enumerate(zip(self.schedulers, states)):
            try:
                scheduler.check_state_dict(own)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{name}: schedulers[{i}]: {exc}") from exc
        return int(state["last_epoch"]), list(states)


class ReduceLROnPlateau(LRScheduler):
    """Divide the lr when a metric has stopped improving: ``step(metric)`` once per epoch.

    A metric a is better than the best so far when (mode min) a < best (1 - threshold) (``rel``)
    or a < best - threshold (``abs``); mode max: a > best (1 + threshold) or a > best + threshold.
    After more than ``patience`` epochs in a row without improvement, each group's lr becomes
    max(lr factor, min_lr) (unchanged when that changes it by at most ``eps``), and the next
    ``cooldown`` epochs count no bad epochs."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        name = "ReduceLROnPlateau"
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{name}: threshold_mode must be 'rel' or 'abs', got "
                             f"{threshold_mode!r}")
        check_number(name, "factor", factor, upper=1.0)
        check_integer(name, "patience", patience)
        check_number(name, "threshold", threshold)
        check_integer(name, "cooldown", cooldown)
        check_number(name, "eps", eps)
        self.min_lrs = _per_group(name, "min_lr", optimizer, min_lr)
        self.optimizer, self.mode, self.factor = optimizer, mode, float(factor)
        self.patience, self.cooldown, self.eps = int(patience), int(cooldown), float(eps)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.best, self.num_bad_epochs, self.cooldown_counter = self.mode_worse, 0, 0
        self.last_epoch = 0

    def is_better(self, a, best):
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                        else best - self.threshold)
        return a > (best * (self.threshold + 1.0) if self.threshold_mode == "rel"
                    else best + self.threshold)

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def step(self, metrics):
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown are not counted
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def state_dict(self):
        """The best metric is stored as a string when infinite ('inf' before any step), as
        JSON has no infinity."""
        best = self.best if math.isfinite(self.best) else str(self.best)
        return {"last_epoch": self.last_epoch, "best": best,
                "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state):
        (self.last_epoch, self.best, self.num_bad_epochs,
         self.cooldown_counter) = self.check_state_dict(state)

    def check_state_dict(self, state):
        """(last_epoch, best, num_bad_epochs, cooldown_counter); ValueError (TypeError for a
        wrong type) naming the entry unless the counters are ints >= 0 and best a number or
        'inf' / '-inf'."""
        name = "ReduceLROnPlateau.load_state_dict"
        keys = {"last_epoch", "best", "num_bad_epochs", "cooldown_counter"}
        if not isinstance(state, dict) or set(state) != keys:
            got = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{name}: expected a dict with keys {sorted(keys)}, got {got}")
        for key in ("last_epoch", "num_bad_epochs", "cooldown_counter"):
            check_integer(name, key, state[key])
        best = state["best"]
        if best in ("inf", "-inf"):
            best = float(best)
        elif isinstance(best, bool) or not isinstance(best, numbers.Real) or math.isnan(best):
            raise ValueError(f"{name}: best must be a number or 'inf' / '-inf', got {best!r:.100}")
        return (int(state["last_epoch"]), float(best), int(state["num_bad_epochs"]),
                int(state["cooldown_counter"]))
