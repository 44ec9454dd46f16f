"""Callbacks the Trainer calls at the start, after every epoch, and at the end of fit()."""
import copy
import math


class Callback:
    def on_train_begin(self, trainer):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        pass

    def on_train_end(self, trainer):
        pass


class _Monitor(Callback):
    """Tracks the best value of ``monitor``; mode 'auto' minimises losses, maximises the rest."""

    def __init__(self, monitor, mode, min_delta=0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.minimize = mode == "min" or (mode == "auto" and "loss" in monitor)
        self.min_delta = abs(min_delta)
        self.best = math.inf if self.minimize else -math.inf

    def _value(self, logs):
        if self.monitor not in logs:
            raise KeyError(f"{type(self).__name__}: no {self.monitor!r} in the epoch's logs "
                           f"(have {', '.join(logs)}); pass a val_loader to fit() for val_* metrics")
        return logs[self.monitor]

    def _improved(self, value):
        if self.minimize:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", patience=3, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        super().__init__(monitor, mode, min_delta)
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.wait, self.stopped_epoch, self.best_state = 0, None, None

    def on_epoch_end(self, trainer, epoch, logs):
        value = self._value(logs)
        if self._improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_state = copy.deepcopy(trainer.model.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer):
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class ModelCheckpoint(_Monitor):
    """Save a checkpoint (model, optimizer, scheduler, epoch) after each epoch, or only when
    ``monitor`` improves with ``save_best_only``. ``path`` may hold ``{epoch}``."""

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__(monitor, mode)
        self.path, self.save_best_only = path, save_best_only

    def on_epoch_end(self, trainer, epoch, logs):
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        trainer.save_checkpoint(self.path.format(epoch=epoch), epoch=epoch)
