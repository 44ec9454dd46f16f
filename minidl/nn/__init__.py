"""Layers, losses and the Module system: ``from minidl import nn``."""
from . import functional, init, utils
from .activation import (
    ELU, GELU, Hardtanh, LeakyReLU, LogSoftmax, Mish, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh,
)
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .dropout import Dropout, Dropout1d, Dropout2d
from .linear import Flatten, Identity, Linear, Unflatten
from .loss import (
    BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss,
    MarginRankingLoss, MSELoss, NLLLoss, SmoothL1Loss, TripletMarginLoss,
)
from .upsampling import PixelShuffle, PixelUnshuffle, Upsample
from .module import Module
from .parameter import Parameter
from .embedding import Embedding
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, LocallyConnected2d, TiledConv2d
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .lowrank import LowRankLinear, factorize_linear
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .detection import DetectionLoss
from .attention import MultiheadAttention
from .transformer import (
    Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
)
from .sync_batchnorm import SyncBatchNorm
from . import parallel
