"""FashionCNN: two 3x3 conv blocks with batch norm and 2x2 max pooling, then two dense layers.

    [conv3 pad 1 -> BN -> ReLU -> max pool 2] x 2: 1x28x28 -> 32x14x14 -> 64x7x7,
    FC 3136 -> 128 -> ReLU -> dropout -> 10                        (421,738 parameters)

The architecture of the Fashion-MNIST benchmark table's "2 conv + pooling + batch norm" row
(0.934). Measured with Adam (lr 1e-3, batch 64, seed 0): test accuracy 0.922 after 6 epochs,
0.926 after 10, about 40 s per epoch on 2 cores.

``conv(in_channels, out_channels, side)`` builds each convolution (side: its input's height
and width), so TiledCNN and LocalCNN differ only there.
"""
from minidl import nn


def conv_block(conv):
    return [conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(), nn.MaxPool2d(2)]


def same_conv(in_channels, out_channels, side):
    """A 3x3 convolution that keeps the side x side size; no bias, as batch norm follows."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)


class FashionCNN(nn.Sequential):
    def __init__(self, channels=(32, 64), hidden=128, num_classes=10, dropout=0.25, conv=same_conv):
        c1, c2 = channels
        super().__init__(
            *conv_block(conv(1, c1, 28)),
            *conv_block(conv(c1, c2, 14)),
            nn.Flatten(),
            nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )


def build():
    return FashionCNN()
