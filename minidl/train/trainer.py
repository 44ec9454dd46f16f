"""Trainer: the training loop, evaluation, prediction and checkpoints, with tqdm progress bars.

Per batch: output = model(x); loss = loss_fn(output, y); optimizer.zero_grad(); loss.backward();
optimizer.step(). Per epoch: metrics averaged over samples, validation under no_grad() and
model.eval(), the scheduler stepped, callbacks called. Only Python floats are kept (no graphs).
"""
import math

import numpy as np
from tqdm.auto import tqdm

from ..device import to_host
from ..function import no_grad
from ..utils.serialization import load_checkpoint, save_checkpoint
from . import metrics as metric_registry


class Trainer:
    def __init__(self, model, optimizer, loss_fn, metrics=("accuracy",), scheduler=None,
                 callbacks=(), device="cpu", progress=True):
        self.model = model.to(device)
        self.optimizer, self.loss_fn, self.scheduler = optimizer, loss_fn, scheduler
        self.metrics = dict(metric_registry.resolve(m) for m in metrics)
        self.callbacks = list(callbacks)
        self.device, self.progress = device, progress
        self.history = {}
        self.epoch = 0
        self.stop_training = False

    # ------------------------------------------------------------ loops
    def fit(self, train_loader, val_loader=None, epochs=1):
        """Train for ``epochs`` more epochs; returns the history {name: [value per epoch]}."""
        self.stop_training = False
        for callback in self.callbacks:
            callback.on_train_begin(self)
        last = self.epoch + epochs
        while self.epoch < last and not self.stop_training:
            self.epoch += 1
            logs = self._train_epoch(train_loader, f"epoch {self.epoch}/{last}")
            if val_loader is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
            if self.scheduler is not None:
                self.scheduler.step()
            for name, value in logs.items():
                self.history.setdefault(name, []).append(value)
            for callback in self.callbacks:
                callback.on_epoch_end(self, self.epoch, logs)
        for callback in self.callbacks:
            callback.on_train_end(self)
        return self.history

    def _train_epoch(self, loader, description):
        self.model.train()
        totals = _Totals(self.metrics)
        bar = tqdm(loader, desc=description, unit="batch", disable=not self.progress, leave=True)
        for step, (inputs, targets) in enumerate(bar):
            inputs, targets = inputs.to(self.device), targets.to(self.device)
            output = self.model(inputs)
            loss = self.loss_fn(output, targets)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"Trainer: the loss became {value} at epoch {self.epoch}, "
                                         f"batch {step}; lower the learning rate or check the data")
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            totals.add(value, output.data, targets.data)
            if step % 20 == 0:
                bar.set_postfix(totals.summary(), refresh=False)
        bar.set_postfix(totals.summary())
        bar.close()
        return totals.summary()

    def evaluate(self, loader):
        """Mean loss and metrics over ``loader``, under no_grad() and model.eval()."""
        was_training = self.model.training
        self.model.eval()
        totals = _Totals(self.metrics)
        with no_grad():
            for inputs, targets in tqdm(loader, desc="evaluate", unit="batch", leave=False,
                                        disable=not self.progress):
                inputs, targets = inputs.to(self.device), targets.to(self.device)
                output = self.model(inputs)
                totals.add(self.loss_fn(output, targets).item(), output.data, targets.data)
        self.model.train(was_training)
        return totals.summary()

    def predict(self, loader):
        """The model's outputs for every batch of ``loader`` (its first field), as one array."""
        was_training = self.model.training
        self.model.eval()
        outputs = []
        with no_grad():
            for batch in tqdm(loader, desc="predict", unit="batch", leave=False,
                              disable=not self.progress):
                outputs.append(to_host(self.model(batch[0].to(self.device)).data))
        self.model.train(was_training)
        return np.concatenate(outputs)

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path, epoch=None):
        save_checkpoint(path, self.model, self.optimizer, self.scheduler,
                        epoch=self.epoch if epoch is None else epoch)

    def load_checkpoint(self, path):
        """Restore model, optimizer and scheduler; training continues after the saved epoch."""
        info = load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        self.epoch = info["epoch"] or 0
        return info


class _Totals:
    """Sample-weighted running sums of the loss and each metric over an epoch."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.loss_sum, self.samples = 0.0, 0
        self.sums = {name: [0.0, 0] for name in metrics}

    def add(self, loss, output, target):
        n = len(target)
        self.loss_sum += loss * n
        self.samples += n
        for name, metric in self.metrics.items():
            total, count = metric(output, target)
            self.sums[name][0] += total
            self.sums[name][1] += count

    def summary(self):
        result = {"loss": self.loss_sum / max(self.samples, 1)}
        result.update({name: total / max(count, 1) for name, (total, count) in self.sums.items()})
        return result
