"""Embedding: a lookup table of learnable vectors."""
import numpy as np

from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class Embedding(Module):
    """y = W[index], W of shape (num_embeddings, embedding_dim), init N(0, 1) as PyTorch.

    The row ``padding_idx`` starts at zero and gets no gradient: a padding token stays zero.
    With ``max_norm`` each forward first rescales the looked-up rows whose ``norm_type``-norm
    exceeds it to that norm, in place, as PyTorch.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 dtype=np.float32):
        super().__init__()
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range for "
                                 f"{self.num_embeddings} embeddings")
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        self.max_norm, self.norm_type = max_norm, norm_type
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None and self.weight.device != "meta":
            self.weight.array[self.padding_idx] = 0

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type)

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        return text if self.max_norm is None else text + f", max_norm={self.max_norm}"
