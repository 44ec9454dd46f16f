"""LocalCNN: FashionCNN with locally connected 3x3 layers (LocallyConnected2d): every output
position has its own kernel. With no sharing the weights grow with the image, so the channels
are halved: 1x28x28 -> 16x14x14 -> 32x7x7 -> 128 -> 10 (1,218,282 parameters)."""
from minidl import nn

from .fashion_cnn import FashionCNN


def local_conv(in_channels, out_channels, side):
    """A 3x3 locally connected layer that keeps the side x side size (no bias: batch norm follows)."""
    return nn.LocallyConnected2d(in_channels, out_channels, side, 3, padding=1, bias=False)


class LocalCNN(FashionCNN):
    def __init__(self, channels=(16, 32), **options):
        super().__init__(channels=channels, conv=local_conv, **options)


def build():
    return LocalCNN()
