"""TiledCNN: FashionCNN with 2x2-tiled 3x3 convolutions (TiledConv2d): units one tile apart
share weights, neighbours do not, so each layer holds 4 kernels per filter
(1x28x28 -> 32x14x14 -> 64x7x7 -> 128 -> 10, 477,898 parameters)."""
from minidl import nn

from .fashion_cnn import FashionCNN


class TiledCNN(FashionCNN):
    def __init__(self, tile_size=2, **options):
        def tiled_conv(in_channels, out_channels, side):
            """3x3, keeps the size; no bias, as batch norm follows."""
            return nn.TiledConv2d(in_channels, out_channels, 3, tile_size, padding=1, bias=False)
        super().__init__(conv=tiled_conv, **options)


def build():
    return TiledCNN()
