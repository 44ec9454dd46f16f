"""End to end on the real Fashion-MNIST (skipped where the files are not on this machine)."""
import pytest

import minidl
from minidl import nn, optim
from minidl.data import DataLoader, FashionMNIST
from models.mlp import MLP


def load(train):
    try:
        return FashionMNIST(train=train, download=False, normalize=True)
    except FileNotFoundError as missing:
        pytest.skip(f"Fashion-MNIST not installed: {missing}")


@pytest.mark.slow
def test_mlp_with_adam_reaches_087_in_five_epochs():
    minidl.manual_seed(0)
    train_set, test_set = load(True), load(False)
    assert (len(train_set), len(test_set)) == (60_000, 10_000)
    model = MLP()
    trainer = minidl.Trainer(model, optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss(),
                             progress=False)
    trainer.fit(DataLoader(train_set, 64, shuffle=True, seed=0), epochs=5)
    accuracy = trainer.evaluate(DataLoader(test_set, 1000))["accuracy"]
    assert accuracy >= 0.87
