"""CSVLogger and TensorBoardLogger: what a run leaves on disk, read back by csv, by a small
TFRecord/protobuf reader written here from the format's documentation, and by TensorBoard's own
EventAccumulator when the tensorboard package is installed."""
import csv
import glob
import os
import struct

import numpy as np
import pytest

from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.train import CSVLogger, TensorBoardLogger, Trainer
from minidl.train.callbacks import Callback, crc32c, masked_crc32c


def _trainer(callbacks):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                      callbacks=callbacks, progress=False)
    train = DataLoader(TensorDataset(x[:30], y[:30]), 10)
    val = DataLoader(TensorDataset(x[30:], y[30:]), 10)
    return trainer, train, val


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


# ---------------------------------------------------------------- CSVLogger

def test_csv_logger_writes_one_row_per_epoch_with_every_log_key(tmp_path):
    path = tmp_path / "log.csv"
    trainer, train, val = _trainer([CSVLogger(path)])
    history = trainer.fit(train, val, epochs=3)
    rows = _rows(path)
    assert rows[0] == ["epoch", *history]
    assert [int(r[0]) for r in rows[1:]] == [1, 2, 3]
    for column, name in enumerate(rows[0][1:], start=1):
        assert [float(r[column]) for r in rows[1:]] == history[name]  # full precision


def test_csv_logger_rows_are_on_disk_after_each_epoch(tmp_path):
    """Read the file from another handle while training runs: the epoch's line is whole."""
    path = tmp_path / "log.csv"
    seen = []

    class Peek(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            text = path.read_text()
            assert text.endswith("\n")
            seen.append(len(text.splitlines()))

    trainer, train, val = _trainer([CSVLogger(path), Peek()])
    trainer.fit(train, val, epochs=2)
    assert seen == [2, 3]


def test_csv_logger_resumed_fit_and_append(tmp_path):
    path = tmp_path / "log.csv"
    trainer, train, val = _trainer([CSVLogger(path)])
    trainer.fit(train, val, epochs=1)
    trainer.fit(train, val, epochs=1)  # the same run goes on: no second header
    assert [r[0] for r in _rows(path)] == ["epoch", "1", "2"]

    trainer, train, val = _trainer([CSVLogger(path, append=True)])
    trainer.fit(train, val, epochs=1)
    assert [r[0] for r in _rows(path)] == ["epoch", "1", "2", "1"]

    trainer, train, val = _trainer([CSVLogger(path)])  # append=False starts a new file
    trainer.fit(train, epochs=1)
    rows = _rows(path)
    assert rows[0] == ["epoch", "loss", "accuracy"] and len(rows) == 2


def test_csv_logger_names_keys_missing_from_the_header(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n")
    trainer, train, val = _trainer([CSVLogger(path, append=True)])
    with pytest.raises(ValueError, match=r"accuracy.*no column"):
        trainer.fit(train, epochs=1)


# ---------------------------------------------------------------- TensorBoardLogger

def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    assert masked_crc32c(b"") == 0xA282EAD8


def _varint(data, at):
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _fields(data):
    """{field number: [values]} of one protocol-buffer message (bytes for length-delimited)."""
    out, at = {}, 0
    while at < len(data):
        key, at = _varint(data, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = struct.unpack_from("<d", data, at)[0], at + 8
        elif wire == 5:
            value, at = struct.unpack_from("<f", data, at)[0], at + 4
        else:
            assert wire == 2, f"wire type {wire}"
            length, at = _varint(data, at)
            value, at = data[at:at + length], at + length
        out.setdefault(field, []).append(value)
    return out


def read_events(path):
    """The Events of a TFRecord file as field dicts, every length and data CRC checked."""
    data, at, events = open(path, "rb").read(), 0, []
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack_from("<I", data, at + 8)[0] == masked_crc32c(header)
        payload = data[at + 12:at + 12 + length]
        assert struct.unpack_from("<I", data, at + 12 + length)[0] == masked_crc32c(payload)
        events.append(_fields(payload))
        at += 16 + length
    return events


def _scalars(path):
    """{tag: [(step, value)]} read with the small reader above."""
    events = read_events(path)
    assert events[0][3] == [b"brain.Event:2"] and isinstance(events[0][1][0], float)
    scalars = {}
    for event in events[1:]:
        for value in _fields(event[5][0])[1]:
            fields = _fields(value)
            scalars.setdefault(fields[1][0].decode(), []).append((event[2][0], fields[2][0]))
    return scalars


def _fit_with_tensorboard(logdir):
    trainer, train, val = _trainer([TensorBoardLogger(logdir)])
    return trainer.fit(train, val, epochs=3)


def test_tensorboard_logger_writes_train_and_validation_runs(tmp_path):
    history = _fit_with_tensorboard(tmp_path)
    for run, prefix in (("train", ""), ("validation", "val_")):
        (path,) = glob.glob(os.path.join(tmp_path, run, "events.out.tfevents.*"))
        scalars = _scalars(path)
        assert sorted(scalars) == ["accuracy", "loss"]
        for tag, points in scalars.items():
            assert [step for step, _ in points] == [1, 2, 3]
            np.testing.assert_allclose([v for _, v in points], history[prefix + tag], rtol=1e-6)


def test_tensorboard_reads_the_event_files(tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="tensorboard is not installed (pip install 'minidl[tensorboard]')")
    history = _fit_with_tensorboard(tmp_path)
    for run, prefix in (("train", ""), ("validation", "val_")):
        accumulator = event_accumulator.EventAccumulator(str(tmp_path / run))
        accumulator.Reload()
        assert sorted(accumulator.Tags()["scalars"]) == ["accuracy", "loss"]
        for tag in ("loss", "accuracy"):
            points = accumulator.Scalars(tag)
            assert [p.step for p in points] == [1, 2, 3]
            np.testing.assert_allclose([p.value for p in points], history[prefix + tag], rtol=1e-6)
