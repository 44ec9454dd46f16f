"""Functional forms of the layers and losses: ``import minidl.nn.functional as F``.

Each op is a Function whose forward and backward pick the kernels of the tensors' device
(``minidl.kernels.for_device``); layers call these, never a kernel. One module per family.
"""
from .activation import flatten, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .linear import dropout, linear
from .loss import (
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss,
    nll_loss,
)
from .recurrent import embedding, gru, lstm, rnn
from .conv import conv1d, conv2d, conv_output_size, locally_connected2d, tiled_conv2d
from .pooling import adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from .lowrank import low_rank_linear
from .normalization import batch_norm
from .detection import detection_loss
