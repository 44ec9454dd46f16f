"""The shapes exercise of the course notes, as a model: 386 x 386 RGB input,
conv3-64, max pool 3/3, conv3-256, conv1-512, max pool 3/3, FC-2048, FC-1000;
stride-1 convolutions without padding, no bias, no activation.

Feature maps 64x384x384, 64x128x128, 256x126x126, 512x126x126, 512x42x42 (903,168 values),
2048, 1000. Parameters 1,728; 147,456; 131,072; 1,849,688,064; 2,048,000. Build it inside
``with minidl.device("meta"):`` unless you have 7.4 GB to spare.
"""
from minidl import nn


class ExerciseCNN(nn.Sequential):
    def __init__(self, in_channels=3, input_size=386):
        side = ((input_size - 2) // 3 - 2) // 3  # conv3, pool3, conv3, (conv1), pool3
        super().__init__(
            nn.Conv2d(in_channels, 64, 3, bias=False),
            nn.MaxPool2d(3, stride=3),
            nn.Conv2d(64, 256, 3, bias=False),
            nn.Conv2d(256, 512, 1, bias=False),
            nn.MaxPool2d(3, stride=3),
            nn.Flatten(),
            nn.Linear(512 * side * side, 2048, bias=False),
            nn.Linear(2048, 1000, bias=False),
        )


def build():
    return ExerciseCNN()
