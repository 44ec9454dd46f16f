"""Callbacks the Trainer calls at the start, after every epoch, and at the end of fit().

Distributed, every rank calls its callbacks with the same logs, except those with
``rank_zero_only`` (the loggers, which write files), called on rank 0 only."""
import copy
import csv
import io
import math
import os
import socket
import struct
import time

from .trainer import decided_on_rank0


class Callback:
    rank_zero_only = False

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
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.
    Distributed, rank 0's decision is obeyed by all ranks (the Trainer broadcasts it)."""

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
    """Save a checkpoint (``Trainer.save_checkpoint``: all a resumed run needs) after each epoch,
    or only when ``monitor`` improves with ``save_best_only``. ``path`` may hold ``{epoch}``.
    Distributed, rank 0 decides whether to save (broadcast), then every rank calls
    ``Trainer.save_checkpoint`` and rank 0 writes."""

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__(monitor, mode)
        self.path, self.save_best_only = path, save_best_only

    def on_epoch_end(self, trainer, epoch, logs):
        if self.save_best_only:
            value = self._value(logs)
            if not decided_on_rank0(self._improved(value)):
                return
            self.best = value
        trainer.save_checkpoint(self.path.format(epoch=epoch), epoch=epoch)


class CSVLogger(Callback):
    """One CSV row per epoch: ``epoch`` and every key of the epoch's logs, in the order of the
    first epoch written, which also gives the header. Each row goes out in a single write and is
    flushed at once, so a run that crashes leaves whole lines, the last finished epoch included.

    ``append=False`` starts a new file at the first fit(); later fit() calls of the same
    Trainer (a resumed run) add to it. ``append=True`` adds to an existing file from the start
    and keeps its header, which the logs must then match."""

    rank_zero_only = True

    def __init__(self, path, append=False):
        self.path, self.append = os.fspath(path), append
        self.columns, self.file, self._started = None, None, False

    def on_train_begin(self, trainer):
        adding = self.append or self._started
        if adding and self.columns is None and os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as existing:
                self.columns = next(csv.reader(existing), None)
        self.file = open(self.path, "a" if adding else "w", newline="", encoding="utf-8")
        self._started = True

    def on_epoch_end(self, trainer, epoch, logs):
        if self.columns is None:
            self.columns = ["epoch", *logs]
            self._write(self.columns)
        unknown = [key for key in logs if key not in self.columns]
        if unknown:
            raise ValueError(f"CSVLogger({self.path!r}): the logs of epoch {epoch} have "
                             f"{', '.join(unknown)}, which the file's header "
                             f"({', '.join(self.columns)}) has no column for")
        row = {"epoch": epoch, **logs}
        self._write([row.get(column, "") for column in self.columns])

    def on_train_end(self, trainer):
        if self.file is not None:
            self.file.close()
            self.file = None

    def _write(self, fields):
        line = io.StringIO()
        csv.writer(line).writerow(fields)
        self.file.write(line.getvalue())
        self.file.flush()


class TensorBoardLogger(Callback):
    """The epoch's logs as TensorBoard scalars (``tensorboard --logdir LOGDIR``): training
    figures in ``LOGDIR/train``, the ``val_`` ones in ``LOGDIR/validation`` under the same tag
    (``val_loss`` is tag ``loss`` there), so TensorBoard draws both curves on one chart.
    The step is the epoch.

    The event file is written here, not through the ``tensorboard`` package: the format is small
    and documented (a TFRecord file of Event protocol buffers), and writing it takes some forty
    lines, where the package would bring TensorFlow's protobuf and gRPC stacks into a training
    run only to be viewed later. ``pip install tensorboard`` is needed to view the logs only.

    File: records of ``uint64 length, uint32 masked_crc32c(length), data, uint32
    masked_crc32c(data)`` (little-endian); the first holds ``Event{wall_time, file_version:
    "brain.Event:2"}``, then one ``Event{wall_time, step, summary{value{tag, simple_value}}}``
    per figure, each flushed at the end of its epoch."""

    rank_zero_only = True

    def __init__(self, logdir):
        self.logdir = os.fspath(logdir)
        self.writers = {}

    def on_epoch_end(self, trainer, epoch, logs):
        for name, value in logs.items():
            run, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            self._writer(run).add_scalar(tag, value, epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, trainer):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}

    def _writer(self, run):
        if run not in self.writers:
            self.writers[run] = EventFileWriter(os.path.join(self.logdir, run))
        return self.writers[run]


class EventFileWriter:
    """Appends TensorBoard scalar events to a new ``events.out.tfevents.*`` file in ``directory``
    (the record layout is in TensorBoardLogger's docstring)."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
        self.path = os.path.join(directory, name)
        self.file = open(self.path, "wb")
        self._write_event(_bytes_field(3, b"brain.Event:2"))
        self.flush()

    def add_scalar(self, tag, value, step):
        value = (_bytes_field(1, tag.encode("utf-8"))
                 + _key(2, 5) + struct.pack("<f", float(value)))  # Summary.Value{tag, simple_value}
        summary = _bytes_field(1, value)                           # Summary{value}
        self._write_event(_key(2, 0) + _varint(int(step) & _MASK64) + _bytes_field(5, summary))

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()

    def _write_event(self, fields):
        """An Event: wall_time (field 1, double) first, then ``fields``, as one TFRecord."""
        data = _key(1, 1) + struct.pack("<d", time.time()) + fields
        length = struct.pack("<Q", len(data))
        self.file.write(length + struct.pack("<I", masked_crc32c(length)) + data
                        + struct.pack("<I", masked_crc32c(data)))


# ---------------------------------------------------------------- protobuf and TFRecord pieces
_MASK64 = (1 << 64) - 1


def _varint(n):
    """Protocol-buffer base-128 varint: 7 bits a byte, low first, high bit = more to come."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(field, wire_type):
    """A field's key: (number << 3) | wire type (0 varint, 1 64-bit, 2 length-delimited, 5 32-bit)."""
    return _varint(field << 3 | wire_type)


def _bytes_field(field, payload):
    return _key(field, 2) + _varint(len(payload)) + payload


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli) of ``data``, as TFRecord files use; crc32c(b"123456789") = 0xE3069283."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    """TFRecord's masked CRC: rotate the CRC right by 15 bits and add 0xA282EAD8 (mod 2^32)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
