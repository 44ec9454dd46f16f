"""A convolutional autoencoder for 28x28 grey images: strided convolutions down, transposed
convolutions back up.

    encoder: conv3 s2 (1 -> 16) -> ReLU -> conv3 s2 (16 -> 32) -> ReLU:  1x28x28 -> 16x14x14 -> 32x7x7
    decoder: convT3 s2 (32 -> 16) -> ReLU -> convT3 s2 (16 -> 1) -> sigmoid: -> 16x14x14 -> 1x28x28
                                                                            (9,569 parameters)
Each ConvTranspose2d (padding 1, output_padding 1) exactly doubles the side its Conv2d halved.
Trained with the mean squared error of pixels in [0, 1] (scripts/train_autoencoder.py).
"""
from minidl import nn


class ConvAutoencoder(nn.Module):
    def __init__(self, channels=(16, 32)):
        super().__init__()
        c1, c2 = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


def build():
    return ConvAutoencoder()
