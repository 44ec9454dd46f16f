"""Functional forms of the layers and losses: ``import minidl.nn.functional as F``.

Each op is a Function whose forward and backward pick the kernels of the tensors' device
(``minidl.kernels.for_device``); layers call these, never a kernel. One module per family.
"""
from .activation import (
    elu, flatten, gelu, hardtanh, leaky_relu, log_softmax, mish, relu, sigmoid, silu, softmax,
    softplus, tanh,
)
from .linear import dropout, dropout1d, dropout2d, linear
from .loss import (
    binary_cross_entropy, binary_cross_entropy_with_logits, cosine_embedding_loss, cross_entropy,
    huber_loss, kl_div, l1_loss, margin_ranking_loss, mse_loss, nll_loss, smooth_l1_loss,
    triplet_margin_loss,
)
from .sampling import interpolate, pad, pixel_shuffle, pixel_unshuffle
from .vector import cosine_similarity, normalize, one_hot, pairwise_distance
from .recurrent import embedding, gru, lstm, rnn
from .conv import conv1d, conv2d, conv_output_size, locally_connected2d, tiled_conv2d
from .conv_transpose import conv_transpose1d, conv_transpose2d
from .pooling import adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from .lowrank import low_rank_linear
from .normalization import batch_norm, group_norm, layer_norm
from .detection import detection_loss
from .attention import scaled_dot_product_attention
