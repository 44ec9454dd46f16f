"""Trainer: the training loop, evaluation, prediction and checkpoints, with tqdm progress bars.

Per batch: output = model(x); loss = loss_fn(output, y); optimizer.zero_grad(); loss.backward();
optimizer.step(). Per epoch: metrics averaged over samples, validation under no_grad() and
model.eval(), the scheduler stepped, callbacks called. Only Python floats are kept (no graphs).

A checkpoint holds every random state training consumes, so that fit(2 epochs) + save +
load in a new process + fit(2 epochs) gives the weights of fit(4 epochs), bit for bit: besides
model, optimizer, scheduler, epoch and step, minidl's global generator (dropout, and the
shuffles of loaders without a seed) and the state of each loader of the last fit (its own
shuffle generator). Loaded loader states are given to the loaders of the next fit.

Distributed (``minidl.distributed.init_process_group()`` called, the model usually wrapped in
``DistributedDataParallel``, the train loader on a ``DistributedSampler``), every rank runs the
same Trainer on its shard:
- bars, epoch lines and the ``rank_zero_only`` callbacks (CSVLogger, TensorBoardLogger) on rank 0;
- each epoch's and evaluation's figures over all ranks, sample-weighted: one all_gather of every
  rank's [loss sum, samples, metric sums and counts], added in rank order on every rank, so all
  ranks hold the same logs to the bit (callbacks that decide from them decide alike);
- before each training epoch the ranks compare their numbers of batches, an error on every rank
  when they differ (DDP would wait forever for the gradients of a batch the others lack);
  ``sampler.set_epoch(epoch - 1)`` is called on a train loader's sampler that has it;
- ``stop_training`` (EarlyStopping) is rank 0's, broadcast after the callbacks, so all stop
  together;
- checkpoints are written by rank 0 and read by every rank. A DistributedDataParallel model is
  saved as its ``module`` (keys without ``module.``), so a checkpoint of a distributed run loads
  into the plain model in one process and the other way round. Its generator state is rank
  0's: a resumed run is exact when the ranks draw alike (the same ``manual_seed`` on every rank
  and the same draws, e.g. dropout on equal batch shapes) or not at all; a DistributedSampler's
  shuffle is a function of its seed and the epoch, which the checkpoint holds.
A rank that raises (a non-finite loss) ends every rank through the process group's excepthook.
"""
import math
import numbers
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from .. import distributed as dist
from ..device import to_host
from ..function import no_grad
from ..nn.parallel import DistributedDataParallel
from ..optim.lr_scheduler import ReduceLROnPlateau
from ..utils.serialization import load_checkpoint, save_checkpoint
from . import metrics as metric_registry


class Trainer:
    """``scheduler_interval``: 'epoch' steps the scheduler after each epoch (StepLR and most
    schedules), 'step' after each optimizer step (OneCycleLR). ReduceLROnPlateau is stepped per
    epoch with the validation loss, or the training loss when there is no validation loader."""

    def __init__(self, model, optimizer, loss_fn, metrics=("accuracy",), scheduler=None,
                 callbacks=(), device="cpu", progress=True, scheduler_interval="epoch"):
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_interval must be 'epoch' or 'step', "
                             f"got {scheduler_interval!r}")
        if scheduler_interval == "step" and isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError("Trainer: ReduceLROnPlateau watches an epoch's loss; use "
                             "scheduler_interval='epoch'")
        self.model = model.to(device)
        self.optimizer, self.loss_fn, self.scheduler = optimizer, loss_fn, scheduler
        self.scheduler_interval = scheduler_interval
        self.metrics = dict(metric_registry.resolve(m) for m in metrics)
        self.callbacks = list(callbacks)
        self.device, self.progress = device, progress
        self.history = {}
        self.epoch = 0
        self.step = 0                # optimizer steps done
        self.stop_training = False
        self._loaders = {}           # 'train' / 'val' -> the loaders of the last fit
        self._loader_states = {}     # 'train' / 'val' -> states loaded for the next fit

    # ------------------------------------------------------------ loops
    def fit(self, train_loader, val_loader=None, epochs=1):
        """Train for ``epochs`` more epochs; returns the history {name: [value per epoch]}."""
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral):
            raise TypeError(f"Trainer.fit: epochs must be an int, got {epochs!r} "
                            f"({type(epochs).__name__})")
        if epochs < 0:
            raise ValueError(f"Trainer.fit: epochs must be >= 0, got {epochs}")
        self._loaders = {"train": train_loader}
        if val_loader is not None:
            self._loaders["val"] = val_loader
        self._restore_loader_states()
        self.stop_training = False
        callbacks = self._callbacks()
        for callback in callbacks:
            callback.on_train_begin(self)
        last = self.epoch + epochs
        while self.epoch < last and not self.stop_training:
            self.epoch += 1
            started = time.perf_counter()
            logs = self._train_epoch(train_loader, f"epoch {self.epoch}/{last}")
            if val_loader is not None:
                logs.update({f"val_{k}": v for k, v in
                             self._evaluate(val_loader, "Trainer.fit", "validation loader").items()})
            if self._shows_progress():
                tqdm.write(epoch_line(self.epoch, last, logs, time.perf_counter() - started))
            if isinstance(self.scheduler, ReduceLROnPlateau):
                self.scheduler.step(logs.get("val_loss", logs["loss"]))
            elif self.scheduler is not None and self.scheduler_interval == "epoch":
                self.scheduler.step()
            for name, value in logs.items():
                self.history.setdefault(name, []).append(value)
            for callback in callbacks:
                callback.on_epoch_end(self, self.epoch, logs)
            self.stop_training = decided_on_rank0(self.stop_training)
        for callback in callbacks:
            callback.on_train_end(self)
        return self.history

    def _shows_progress(self):
        """Bars and epoch lines: in one process, or on rank 0 of the process group."""
        return self.progress and _on_rank0()

    def _callbacks(self):
        """The callbacks this rank runs: all but the ``rank_zero_only`` ones off rank 0."""
        return [c for c in self.callbacks if _on_rank0() or not getattr(c, "rank_zero_only", False)]

    def _train_epoch(self, loader, description):
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if set_epoch is not None:
            set_epoch(self.epoch - 1)  # 0, 1, ... as PyTorch's loop `for epoch in range(n)`
        if dist.is_initialized():
            _check_same_batch_count(loader)
        self.model.train()
        totals = _Totals(self.metrics)
        bar = tqdm(loader, desc=description, unit="batch", disable=not self._shows_progress(),
                   leave=False)
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
            self.step += 1
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
            totals.add(value, output.array, targets.array)
            if step % 20 == 0:
                bar.set_postfix(totals.summary(), refresh=False)
        bar.set_postfix(totals.summary())
        bar.close()
        totals.add_other_ranks()
        _require_batches(totals.samples, "Trainer.fit", "training loader")
        return totals.summary()

    def evaluate(self, loader):
        """Mean loss and metrics over ``loader``, under no_grad() and model.eval(); distributed,
        over every rank's ``loader`` (each its shard; the shards may differ in size).

        A non-finite loss does not stop it (nothing is learned here): the figures are returned
        as they are, with a RuntimeWarning naming the first such batch."""
        return self._evaluate(loader, "Trainer.evaluate", "loader")

    def _evaluate(self, loader, caller, role):
        was_training = self.model.training
        self.model.eval()
        totals = _Totals(self.metrics)
        non_finite = []
        with no_grad():
            for batch, (inputs, targets) in enumerate(tqdm(loader, desc="evaluate", unit="batch", leave=False,
                                                           disable=not self._shows_progress())):
                inputs, targets = inputs.to(self.device), targets.to(self.device)
                output = self.model(inputs)
                value = self.loss_fn(output, targets).item()
                if not math.isfinite(value):
                    non_finite.append((batch, value))
                totals.add(value, output.array, targets.array)
        self.model.train(was_training)
        totals.add_other_ranks()
        _require_batches(totals.samples, caller, role)
        if non_finite:
            batch, value = non_finite[0]
            warnings.warn(f"{caller}: the loss is {value} at batch {batch} of the {role} "
                          f"({len(non_finite)} batches with a non-finite loss); the figures "
                          "returned include it", RuntimeWarning, stacklevel=3)
        return totals.summary()

    def predict(self, loader):
        """The model's outputs for every batch of ``loader`` (its first field), as one array;
        distributed, each rank's for its own loader (nothing is gathered)."""
        was_training = self.model.training
        self.model.eval()
        outputs = []
        with no_grad():
            for batch in tqdm(loader, desc="predict", unit="batch", leave=False,
                              disable=not self._shows_progress()):
                outputs.append(to_host(self.model(batch[0].to(self.device)).array))
        self.model.train(was_training)
        _require_batches(len(outputs), "Trainer.predict", "loader")
        return np.concatenate(outputs)

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path, epoch=None):
        """Everything a resumed run needs (see the module docstring) in one .npz at ``path``.
        Distributed, every rank calls it: rank 0 writes, then all meet at a barrier, so that
        any rank may read the file once it returns."""
        states = {role: loader.state_dict() for role, loader in self._loaders.items()
                  if hasattr(loader, "state_dict")}
        states.update(self._loader_states)  # loaded but not yet used: still the latest
        if _on_rank0():
            save_checkpoint(path, self._plain_model(), self.optimizer, self.scheduler,
                            epoch=self.epoch if epoch is None else epoch, step=self.step,
                            loader_states=states)
        if dist.is_initialized():
            dist.barrier()

    def load_checkpoint(self, path):
        """Restore model, optimizer, scheduler, epoch, step and minidl's global generator, all or
        nothing; the loaders' states saved with them go to the loaders of the next fit().
        Distributed, every rank reads the file."""
        info = load_checkpoint(path, self._plain_model(), self.optimizer, self.scheduler)
        self.epoch, self.step = info["epoch"] or 0, info["step"] or 0
        self._loader_states = info["loaders"]
        return info

    def _plain_model(self):
        """What a checkpoint holds: a DistributedDataParallel's module (keys without
        ``module.``), else the model."""
        return self.model.module if isinstance(self.model, DistributedDataParallel) else self.model

    def _restore_loader_states(self):
        """Give the states of the last load_checkpoint to this fit's loaders (checked first)."""
        for role in self._loader_states:
            loader = self._loaders.get(role)
            if loader is not None and not hasattr(loader, "load_state_dict"):
                raise TypeError(f"Trainer.fit: the checkpoint holds the {role} loader's state, "
                                f"but this {role} loader ({type(loader).__name__}) has no "
                                "load_state_dict() to take it")
        for role, state in self._loader_states.items():
            if role in self._loaders:
                self._loaders[role].load_state_dict(state)
        self._loader_states = {}


def epoch_line(epoch, last, logs, seconds):
    """The line an epoch leaves on screen: 'epoch 3/10  loss 0.4123  accuracy 0.8512
    val_loss 0.4410  val_accuracy 0.8420  12.3 s' (the bars themselves vanish)."""
    figures = "  ".join(f"{name} {value:.4f}" for name, value in logs.items())
    return f"epoch {epoch}/{last}  {figures}  {seconds:.1f} s"


def _on_rank0():
    """True in one process and on rank 0 of an initialised process group."""
    return not dist.is_initialized() or dist.get_rank() == 0


def decided_on_rank0(value):
    """Rank 0's ``value`` on every rank of an initialised process group (one broadcast), so that
    a decision taken there is obeyed by all; ``value`` itself in one process."""
    return dist.broadcast_object_list([value])[0] if dist.is_initialized() else value


def _check_same_batch_count(loader):
    """Distributed training: every rank's loader must give the same number of batches (each
    batch's backward is a collective); an error on every rank when they differ."""
    counts = dist.all_gather_object([None] * dist.get_world_size(),
                                    len(loader) if hasattr(loader, "__len__") else None)
    if None in counts:
        raise TypeError(f"Trainer.fit: the training loader of rank {counts.index(None)} has no "
                        "len(); distributed training compares the ranks' numbers of batches before "
                        "each epoch, use a DataLoader")
    if len(set(counts)) > 1:
        per_rank = ", ".join(f"rank {r}: {n}" for r, n in enumerate(counts))
        raise RuntimeError(
            f"Trainer.fit: the ranks' training loaders give different numbers of batches ({per_rank}); "
            "the ranks with more would wait forever for the others' gradients. Shard the data "
            "with DistributedSampler (it pads every shard to the same length) or give every "
            "rank the same number of samples")


def _require_batches(count, caller, role):
    """A loss or accuracy over nothing is no figure: an empty loader is an error."""
    if count == 0:
        raise ValueError(f"{caller}: the {role} yielded no batch (dataset of 0 samples, or "
                         "drop_last with fewer samples than batch_size)")


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

    def add_other_ranks(self):
        """Distributed: make the sums those of all ranks (one all_gather, added in rank order on
        every rank, so that all hold the same figures to the bit). Nothing in one process."""
        if not dist.is_initialized():
            return
        everyone = dist.all_gather_object([None] * dist.get_world_size(),
                                          (self.loss_sum, self.samples, self.sums))
        self.loss_sum = sum(loss_sum for loss_sum, _, _ in everyone)
        self.samples = sum(samples for _, samples, _ in everyone)
        self.sums = {name: [sum(sums[name][0] for _, _, sums in everyone),
                            sum(sums[name][1] for _, _, sums in everyone)] for name in self.sums}

    def summary(self):
        result = {"loss": self.loss_sum / max(self.samples, 1)}
        result.update({name: total / max(count, 1) for name, (total, count) in self.sums.items()})
        return result
