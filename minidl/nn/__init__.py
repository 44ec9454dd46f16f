"""Layers, losses and the Module system: ``from minidl import nn``."""
from . import functional, init, utils
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleList, Sequential
from .dropout import Dropout
from .linear import Flatten, Identity, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module
from .parameter import Parameter
from .embedding import Embedding
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .conv import Conv1d, Conv2d, LocallyConnected2d, TiledConv2d
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .lowrank import LowRankLinear, factorize_linear
from .normalization import BatchNorm1d, BatchNorm2d
from .detection import DetectionLoss
