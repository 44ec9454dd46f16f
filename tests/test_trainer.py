"""Trainer: fit/evaluate/predict, checkpoints and resuming, callbacks, metrics, progress bars."""
import math
import os

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.train import EarlyStopping, ModelCheckpoint, Trainer
from minidl.train.callbacks import Callback
from minidl.train.metrics import accuracy
from minidl.utils.serialization import load_checkpoint


def separable(n=200, seed=0, dtype=np.float32):
    """Two classes split by the line x0 + 2 x1 = 0.3, with a margin around it."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (4 * n, 2))
    score = x[:, 0] + 2 * x[:, 1] - 0.3
    x = x[np.abs(score) > 0.2][:n]
    y = (x[:, 0] + 2 * x[:, 1] - 0.3 > 0).astype(np.int64)
    assert len(x) == n and 0.2 < y.mean() < 0.8
    return x.astype(dtype), y


def mlp(dtype=np.float32):
    return nn.Sequential(nn.Linear(2, 16, dtype=dtype), nn.ReLU(), nn.Linear(16, 2, dtype=dtype))


def loaders(batch_size=20, shuffle=False, dtype=np.float32):
    x, y = separable(dtype=dtype)
    train = DataLoader(TensorDataset(x[:150], y[:150]), batch_size, shuffle=shuffle)
    val = DataLoader(TensorDataset(x[150:], y[150:]), 25)
    return train, val


def make_trainer(model=None, lr=0.05, **kwargs):
    model = model if model is not None else mlp()
    kwargs.setdefault("progress", False)
    return Trainer(model, optim.Adam(model.parameters(), lr=lr), nn.CrossEntropyLoss(), **kwargs)


def test_fit_learns_separable_problem():
    train, val = loaders(shuffle=True)
    trainer = make_trainer()
    history = trainer.fit(train, val, epochs=6)
    assert history is trainer.history
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for name, values in history.items():
        assert len(values) == 6, name
        assert all(type(v) is float for v in values), name
        assert all(math.isfinite(v) for v in values), name
    assert history["accuracy"][-1] > 0.9
    assert history["val_accuracy"][-1] > 0.9
    assert history["loss"][-1] < history["loss"][0]
    assert trainer.epoch == 6
    # fit continues: the history grows
    trainer.fit(train, epochs=1)
    assert len(history["loss"]) == 7 and len(history["val_loss"]) == 6
    assert trainer.epoch == 7


def test_evaluate_weights_batches_by_samples():
    """Uneven batches (7, 7, 7, 4): the epoch values are the full-data mean loss and accuracy."""
    x, y = separable(n=25)
    trainer = make_trainer()
    result = trainer.evaluate(DataLoader(TensorDataset(x, y), 7))
    assert set(result) == {"loss", "accuracy"}
    with minidl.no_grad():
        output = trainer.model(minidl.tensor(x))
        full_loss = nn.CrossEntropyLoss()(output, minidl.tensor(y)).item()
    assert result["loss"] == pytest.approx(full_loss, rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(output.array.argmax(1) == y))


def test_accuracy_metric():
    output = np.array([[0.1, 0.9], [2.0, -1.0], [0.3, 0.2], [0.0, 5.0]])
    assert accuracy(output, np.array([1, 0, 1, 0])) == (2.0, 4)
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    output, target = rng.standard_normal((50, 4)), rng.integers(0, 4, 50)
    total, count = accuracy(output, target)
    assert total / count == pytest.approx(sklearn.accuracy_score(target, output.argmax(1)))


def test_custom_metric_and_unknown_metric():
    def error_rate(output, target):
        return float(np.sum(output.argmax(-1) != target)), len(target)

    train, val = loaders()
    trainer = make_trainer(metrics=("accuracy", error_rate))
    history = trainer.fit(train, val, epochs=1)
    assert history["error_rate"][0] == pytest.approx(1 - history["accuracy"][0])
    assert history["val_error_rate"][0] == pytest.approx(1 - history["val_accuracy"][0])
    with pytest.raises(ValueError, match="unknown metric"):
        make_trainer(metrics=("f1_score_of_nothing",))


class Recorder(nn.Module):
    """A linear layer that records the mode and grad state of every forward call."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 3)
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, minidl.is_grad_enabled()))
        return self.linear(x)


def test_evaluate_and_predict_run_in_eval_mode_without_grad():
    x, y = separable(n=30)
    loader = DataLoader(TensorDataset(x, y), 8)
    model = Recorder()
    trainer = make_trainer(model)

    trainer.fit(loader, epochs=1)
    assert model.calls and set(model.calls) == {(True, True)}
    model.calls.clear()

    trainer.evaluate(loader)
    assert len(model.calls) == 4 and set(model.calls) == {(False, False)}
    assert model.training and minidl.is_grad_enabled()
    model.calls.clear()

    out = trainer.predict(loader)
    assert set(model.calls) == {(False, False)}
    assert model.training and minidl.is_grad_enabled()
    assert isinstance(out, np.ndarray) and out.shape == (30, 3)
    with minidl.no_grad():
        np.testing.assert_allclose(out, model.linear(minidl.tensor(x)).data, rtol=1e-6)

    # a model already in eval mode stays there
    model.eval()
    trainer.evaluate(loader)
    assert not model.training


def test_fit_with_validation_evaluates_in_eval_mode_then_trains_again():
    x, y = separable(n=30)
    loader = DataLoader(TensorDataset(x, y), 10)
    model = Recorder()
    make_trainer(model).fit(loader, loader, epochs=2)
    # per epoch: 3 training batches then 3 validation batches
    expected = ([(True, True)] * 3 + [(False, False)] * 3) * 2
    assert model.calls == expected
    assert model.training


def test_predict_accepts_single_field_loader():
    x, _ = separable(n=12)
    trainer = make_trainer()
    out = trainer.predict(DataLoader(TensorDataset(x), 5))
    assert out.shape == (12, 2) and out.dtype == np.float32


def _weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def _resume_setup(seed):
    minidl.manual_seed(seed)
    model = mlp(np.float64)
    opt = optim.Adam(model.parameters(), lr=0.02, amsgrad=True)
    sched = optim.StepLR(opt, step_size=1, gamma=0.7)
    return Trainer(model, opt, nn.CrossEntropyLoss(), scheduler=sched, progress=False)


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    # shuffle=False: DataLoader keeps one generator for all epochs, so a resumed loader would
    # otherwise draw epoch 1's order again
    train, val = loaders(shuffle=False, dtype=np.float64)

    straight = _resume_setup(0)
    straight.fit(train, val, epochs=4)

    first = _resume_setup(0)
    first.fit(train, val, epochs=2)
    path = tmp_path / "resume.npz"
    first.save_checkpoint(path)

    resumed = _resume_setup(1)          # a different initialisation, overwritten by the load
    assert not np.array_equal(resumed.model[0].weight.data, first.model[0].weight.data)
    info = resumed.load_checkpoint(path)
    assert info["epoch"] == 2 and resumed.epoch == 2
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.02 * 0.7 ** 2)
    resumed.fit(train, val, epochs=2)
    assert resumed.epoch == 4

    ref, got = _weights(straight.model), _weights(resumed.model)
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(resumed.history["loss"], straight.history["loss"][2:], rtol=1e-12)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(
        straight.optimizer.param_groups[0]["lr"])

    # and training 2 + 2 without the checkpoint but with a reset Adam does differ
    fresh = _resume_setup(0)
    fresh.fit(train, val, epochs=2)
    fresh.optimizer = optim.Adam(fresh.model.parameters(), lr=0.02 * 0.7 ** 2, amsgrad=True)
    fresh.scheduler = None
    fresh.fit(train, val, epochs=2)
    assert not np.allclose(_weights(fresh.model)["0.weight"], ref["0.weight"], rtol=1e-6)


def test_early_stopping_after_patience_without_improvement():
    train, _ = loaders()
    model = mlp()
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.0), nn.CrossEntropyLoss(),
                      callbacks=[EarlyStopping(monitor="loss", patience=3)], progress=False)
    history = trainer.fit(train, epochs=20)
    # epoch 1 sets the best; with lr = 0 epochs 2, 3, 4 cannot improve on it
    assert len(history["loss"]) == 4
    assert trainer.callbacks[0].stopped_epoch == 4
    assert trainer.epoch == 4
    assert len(set(history["loss"])) == 1


def test_early_stopping_needs_the_monitored_value():
    train, _ = loaders()
    trainer = make_trainer(callbacks=[EarlyStopping()])   # val_loss, but no val_loader
    with pytest.raises(KeyError, match="val_loader"):
        trainer.fit(train, epochs=1)
    with pytest.raises(ValueError):
        EarlyStopping(mode="sideways")


def scripted_metric(values, trainer_box):
    """A metric whose epoch value is values[epoch - 1]: it makes a monitor's course known."""
    def score(output, target):
        return values[trainer_box[0].epoch - 1] * len(target), len(target)
    return score


class Snapshots(Callback):
    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, trainer, epoch, logs):
        self.weights[epoch] = _weights(trainer.model)


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_restore_best_weights(restore):
    train, _ = loaders()
    box = []
    snapshots = Snapshots()
    stopper = EarlyStopping(monitor="score", mode="max", patience=2, restore_best_weights=restore)
    trainer = make_trainer(metrics=(scripted_metric([0.1, 0.5, 0.9, 0.4, 0.9, 0.2, 1.0], box),),
                           callbacks=[snapshots, stopper], lr=0.05)
    box.append(trainer)
    history = trainer.fit(train, epochs=7)
    # best at epoch 3 (the 0.9 at epoch 5 is no improvement); epochs 4 and 5 use the patience
    assert history["score"] == pytest.approx([0.1, 0.5, 0.9, 0.4, 0.9])
    assert stopper.stopped_epoch == 5 and stopper.best == pytest.approx(0.9)
    final = _weights(trainer.model)
    assert not np.array_equal(snapshots.weights[3]["0.weight"], snapshots.weights[5]["0.weight"])
    expected = snapshots.weights[3 if restore else 5]
    for name in final:
        np.testing.assert_array_equal(final[name], expected[name], err_msg=name)


def test_model_checkpoint_every_epoch(tmp_path):
    train, val = loaders()
    pattern = str(tmp_path / "ckpt-{epoch}.npz")
    trainer = make_trainer(callbacks=[ModelCheckpoint(pattern)])
    trainer.fit(train, val, epochs=3)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-1.npz", "ckpt-2.npz", "ckpt-3.npz"]
    model = mlp()
    info = load_checkpoint(tmp_path / "ckpt-3.npz", model, optim.Adam(model.parameters()))
    assert info["epoch"] == 3
    for name, value in _weights(trainer.model).items():
        np.testing.assert_array_equal(model.state_dict()[name], value)


def test_model_checkpoint_save_best_only(tmp_path):
    train, _ = loaders()
    box = []
    pattern = str(tmp_path / "best-{epoch}.npz")
    trainer = make_trainer(metrics=(scripted_metric([0.3, 0.6, 0.5, 0.8, 0.8, 0.1], box),),
                           callbacks=[ModelCheckpoint(pattern, monitor="score", mode="max",
                                                      save_best_only=True)])
    box.append(trainer)
    snapshots = Snapshots()
    trainer.callbacks.insert(0, snapshots)
    trainer.fit(train, epochs=6)
    assert sorted(os.listdir(tmp_path)) == ["best-1.npz", "best-2.npz", "best-4.npz"]
    model = mlp()
    info = load_checkpoint(tmp_path / "best-4.npz", model)
    assert info["epoch"] == 4
    np.testing.assert_array_equal(model.state_dict()["0.weight"], snapshots.weights[4]["0.weight"])


def test_model_checkpoint_min_mode_on_loss(tmp_path):
    train, _ = loaders()
    box = []
    trainer = make_trainer(
        metrics=(scripted_metric([0.5, 0.7, 0.2, 0.3], box),),
        callbacks=[ModelCheckpoint(str(tmp_path / "c{epoch}.npz"), monitor="score", mode="min",
                                   save_best_only=True)])
    box.append(trainer)
    trainer.fit(train, epochs=4)
    assert sorted(os.listdir(tmp_path)) == ["c1.npz", "c3.npz"]


def test_nan_loss_raises_naming_the_epoch():
    x, y = separable(n=40)
    dataset = TensorDataset(x, y)
    loader = DataLoader(dataset, 10)
    trainer = make_trainer()
    trainer.fit(loader, epochs=1)
    dataset.arrays[0][13, 0] = np.nan
    with pytest.raises(FloatingPointError, match="epoch 2"):
        trainer.fit(loader, epochs=3)


def test_progress_bar_on_stderr_and_one_line_per_epoch_on_stdout(capsys):
    x, y = separable(n=40)
    loader = DataLoader(TensorDataset(x, y), 10)
    trainer = make_trainer(progress=True)
    history = trainer.fit(loader, loader, epochs=2)
    captured = capsys.readouterr()
    assert "epoch 1/2" in captured.err  # the bar
    lines = captured.out.splitlines()
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    for epoch, line in enumerate(lines):
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert f"{name} {history[name][epoch]:.4f}" in line
        assert line.endswith(" s")


def test_no_progress_output_when_disabled(capsys):
    x, y = separable(n=40)
    loader = DataLoader(TensorDataset(x, y), 10)
    trainer = make_trainer(progress=False)
    trainer.fit(loader, loader, epochs=1)
    trainer.predict(loader)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


# ------------------------------------------------------------ refusing to report a lie

EMPTY = "yielded no batch"


def test_fit_on_empty_training_loader_raises_naming_it():
    x, y = separable(n=12)
    trainer = make_trainer()
    with pytest.raises(ValueError, match=f"Trainer.fit: the training loader {EMPTY}"):
        trainer.fit(DataLoader(TensorDataset(x[:0], y[:0]), 4), epochs=1)
    with pytest.raises(ValueError, match=f"training loader {EMPTY}.*drop_last"):
        trainer.fit(DataLoader(TensorDataset(x[:3], y[:3]), 4, drop_last=True), epochs=1)
    assert trainer.history == {} and trainer.step == 0


def test_fit_with_empty_validation_loader_raises_naming_it():
    x, y = separable(n=12)
    trainer = make_trainer()
    with pytest.raises(ValueError, match=f"Trainer.fit: the validation loader {EMPTY}"):
        trainer.fit(DataLoader(TensorDataset(x, y), 4), DataLoader(TensorDataset(x[:0], y[:0]), 4))


def test_evaluate_and_predict_on_empty_loader_raise():
    x, y = separable(n=12)
    trainer = make_trainer()
    with pytest.raises(ValueError, match=f"Trainer.evaluate: the loader {EMPTY}"):
        trainer.evaluate(DataLoader(TensorDataset(x[:0], y[:0]), 4))
    with pytest.raises(ValueError, match=f"Trainer.predict: the loader {EMPTY}"):
        trainer.predict(DataLoader(TensorDataset(x[:0]), 4))


def test_evaluate_with_nan_input_warns_naming_the_batch():
    x, y = separable(n=40)
    x[25, 1] = np.nan                     # batch 2 of 4
    trainer = make_trainer()
    with pytest.warns(RuntimeWarning, match="Trainer.evaluate: the loss is nan at batch 2"):
        result = trainer.evaluate(DataLoader(TensorDataset(x, y), 10))
    assert math.isnan(result["loss"])     # the figures still come back
    assert 0.0 <= result["accuracy"] <= 1.0


@pytest.mark.parametrize("epochs, error", [
    (2.5, TypeError), (2.0, TypeError), ("2", TypeError), (True, TypeError), (-1, ValueError)])
def test_fit_epochs_must_be_a_non_negative_int(epochs, error):
    train, _ = loaders()
    trainer = make_trainer()
    with pytest.raises(error, match="Trainer.fit: epochs must be"):
        trainer.fit(train, epochs=epochs)
    assert trainer.epoch == 0 and trainer.history == {}


def test_fit_epochs_numpy_int_and_zero():
    train, _ = loaders()
    trainer = make_trainer()
    trainer.fit(train, epochs=np.int64(1))
    trainer.fit(train, epochs=0)
    assert trainer.epoch == 1


@pytest.mark.parametrize("batch_size, error", [
    (2.5, TypeError), ("4", TypeError), (True, TypeError), (4.0, TypeError), (0, ValueError),
    (-3, ValueError)])
def test_dataloader_batch_size_must_be_a_positive_int(batch_size, error):
    x, y = separable(n=12)
    with pytest.raises(error, match="DataLoader: batch_size must be"):
        DataLoader(TensorDataset(x, y), batch_size)
    assert len(DataLoader(TensorDataset(x, y), np.int32(5))) == 3


def test_checkpoint_holds_step_and_all_generators(tmp_path):
    train, _ = loaders(shuffle=True)
    trainer = make_trainer()
    trainer.fit(train, epochs=2)
    assert trainer.step == 2 * len(train)
    trainer.save_checkpoint(tmp_path / "c.npz")
    saved = minidl.load(tmp_path / "c.npz")
    assert int(saved["step"]) == trainer.step and int(saved["epoch"]) == 2
    assert "rng" in saved and "loader.train" in saved
    other = make_trainer()
    info = other.load_checkpoint(tmp_path / "c.npz")
    assert other.step == trainer.step and info["loaders"] == {"train": {"generator": None}}


# ------------------------------------------------------------ schedules the Trainer steps

def test_reduce_lr_on_plateau_is_stepped_with_the_validation_loss():
    x, y = separable(n=40)
    loader = DataLoader(TensorDataset(x, y), 10)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.0)  # nothing learns: the loss stays on its plateau
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    seen = []
    original = sched.step
    sched.step = lambda metric: (seen.append(metric), original(metric))
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), scheduler=sched, progress=False)
    history = trainer.fit(loader, loader, epochs=3)
    assert seen == history["val_loss"]
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), scheduler=sched, progress=False)
    seen.clear()
    history = trainer.fit(loader, epochs=2)
    assert seen == history["loss"]


def test_one_cycle_is_stepped_per_batch_with_scheduler_interval_step():
    x, y = separable(n=40)
    loader = DataLoader(TensorDataset(x, y), 10)  # 4 batches an epoch
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=8)
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), scheduler=sched, progress=False,
                      scheduler_interval="step")
    trainer.fit(loader, epochs=2)
    assert sched.last_epoch == 8 == trainer.step
    with pytest.raises(ValueError, match="scheduler_interval"):
        Trainer(model, opt, nn.CrossEntropyLoss(), scheduler_interval="batch")
