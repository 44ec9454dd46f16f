"""Learning-rate schedules (closed forms), stepped once per epoch as in PyTorch.

t is ``last_epoch``, lr_0 the group's initial lr:
StepLR lr_0 gamma^floor(t / step_size);  CosineAnnealingLR eta_min + (lr_0 - eta_min)(1 + cos(pi t / T_max)) / 2;
LambdaLR lr_0 lr_lambda(t).
"""
import math
import numbers

from .optimizer import check_number


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
