"""Activations and reshaping as functions (derivatives in minidl.ops)."""
from ... import ops


def relu(input):
    return ops.ReLU.apply(input)


def leaky_relu(input, negative_slope=0.01):
    return ops.LeakyReLU.apply(input, negative_slope=negative_slope)


def sigmoid(input):
    return ops.Sigmoid.apply(input)


def tanh(input):
    return ops.Tanh.apply(input)


def softmax(input, dim=-1):
    return ops.Softmax.apply(input, dim=dim)


def log_softmax(input, dim=-1):
    return ops.LogSoftmax.apply(input, dim=dim)


def flatten(input, start_dim=1, end_dim=-1):
    return input.flatten(start_dim, end_dim)
