"""Multi-layer perceptron 784-256-128-10 for Fashion-MNIST."""
from minidl import nn


class MLP(nn.Sequential):
    def __init__(self, in_features=28 * 28, hidden=(256, 128), num_classes=10, dropout=0.0):
        layers = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


def build():
    return MLP()
