"""LeNet-5 for 28x28 grey images (LeCun et al. 1998, with MNIST's 28x28 padded to its 32x32):

    conv5 pad 2 -> 6x28x28, max pool 2 -> 6x14x14, conv5 -> 16x10x10, max pool 2 -> 16x5x5,
    FC 400 -> 120 -> 84 -> 10                                      (61,706 parameters)

The modern reading: ReLU and max pooling instead of the paper's scaled tanh and trainable
average subsampling; they train faster and reach the same accuracy here.
"""
from minidl import nn


class LeNet5(nn.Sequential):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )


def build():
    return LeNet5()
