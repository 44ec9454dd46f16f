"""SyncBatchNorm: batch normalisation whose batch statistics are those of all ranks' batches.

With data parallelism each rank sees B / p samples; BatchNorm would normalise each rank's
share by its own statistics. SyncBatchNorm normalises by the statistics of the whole batch of
B samples, as one process with batch B would, at the price of two small allreduces per layer
and step. Per channel c, over the n_r values of rank r and n = sum_r n_r values in all:

    forward:   allreduce (sum x, sum x^2, n_r)  ->  mu = sum x / n,  var = sum x^2 / n - mu^2
               xh = (x - mu) / sqrt(var + eps),  y = g xh + b
    backward:  allreduce (sum dy, sum dy xh)  (both summed over all ranks' values)
               dx = g / sqrt(var + eps) (dy - (sum dy + xh sum(dy xh)) / n)
               dg = sum dy xh,  db = sum dy  over this rank's values only: these are parameter
               gradients, which DistributedDataParallel averages like every other

Sums are taken in float64; var = E[x^2] - mu^2 then loses about log10(mu^2 / var) of float64's
16 digits, harmless unless |mu| / std > 1e4. Outside training, without an initialised process
group or in a world of one, SyncBatchNorm is BatchNorm.
"""
import numpy as np

from ..device import like
from ..distributed.process_group import communicator, is_initialized
from ..function import Function
from ..kernels import for_device
from ..ops import same_meta
from .conv import named_errors
from .normalization import _BatchNorm


class SyncBatchNormFunction(Function):
    """The formulas of the module docstring; the per-channel loops are BatchNorm's kernels run
    with given (global) statistics, plus the global terms added to dx."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps, comm):
        from mpi4py import MPI
        rows = np.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], -1))
        channels = rows.shape[1]
        statistics = np.concatenate([rows.sum(axis=(0, 2), dtype=np.float64),
                                     np.einsum("ncl,ncl->c", rows, rows, dtype=np.float64),
                                     [rows.shape[0] * rows.shape[2]]])
        comm.Allreduce(MPI.IN_PLACE, statistics, op=MPI.SUM)
        count = statistics[-1]
        mean = statistics[:channels] / count
        var = np.maximum(statistics[channels:2 * channels] / count - mean * mean, 0.0)
        weight = np.ones(channels, x.dtype) if weight is None else np.ascontiguousarray(weight, x.dtype)
        shift = np.zeros(channels, x.dtype) if bias is None else np.ascontiguousarray(bias, x.dtype)
        y = for_device(ctx.device, "norm").batch_norm_forward(rows, mean, var, weight, shift, eps, False)
        if running_mean is not None:
            # running statistics use the unbiased variance n / (n - 1) var, as BatchNorm
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * count / (count - 1)
        ctx.save_for_backward(rows, mean, var, weight)
        ctx.options = (eps, count, x.shape, comm)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        from mpi4py import MPI
        rows, mean, var, weight = ctx.saved_arrays
        eps, count, shape, comm = ctx.options
        dy = np.ascontiguousarray(grad.reshape(rows.shape), dtype=rows.dtype, like=like(rows))
        # with given statistics the kernel returns dx = g dy / sqrt(var + eps) and this rank's
        # sum dy xh and sum dy
        dx, dweight, dbias = for_device(ctx.device, "norm").batch_norm_backward(
            rows, dy, mean, var, weight, eps, False)
        channels = rows.shape[1]
        terms = np.concatenate([dbias, dweight]).astype(np.float64)
        comm.Allreduce(MPI.IN_PLACE, terms, op=MPI.SUM)
        sum_dy, sum_dy_xh = terms[:channels], terms[channels:]
        inv_std = 1.0 / np.sqrt(var + eps)
        scale = weight * inv_std
        # dx -= scale / n (sum dy + xh sum(dy xh)) = a x + b per channel, xh = (x - mu) inv_std
        a = -scale / count * sum_dy_xh * inv_std
        b = -scale / count * sum_dy - a * mean
        dx += (a[:, None] * rows + b[:, None]).astype(dx.dtype, copy=False)
        return dx.reshape(shape), dweight, dbias


def sync_batch_norm(input, running_mean, running_var, weight, bias, momentum, eps, comm):
    """Batch normalisation by the statistics of every rank's ``input`` (training only)."""
    if input.ndim < 2:
        raise ValueError(f"sync_batch_norm: expected input (N, C, *), got shape {tuple(input.shape)}")
    return SyncBatchNormFunction.apply(
        input, weight, bias, running_mean=None if running_mean is None else running_mean.array,
        running_var=None if running_var is None else running_var.array, momentum=float(momentum),
        eps=float(eps), comm=comm)


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C), (N, C, L) or (N, C, H, W) with the statistics of all ranks'
    batches in training (formulas in the module docstring); PyTorch's arguments. Make one from
    an existing model with ``SyncBatchNorm.convert_sync_batchnorm(model)``."""

    _dims = (2, 3, 4)

    def forward(self, input):
        if not (self.training and is_initialized() and communicator("SyncBatchNorm").Get_size() > 1):
            return super().forward(input)
        with named_errors(self):
            if input.ndim not in self._dims or input.shape[1] != self.num_features:
                raise ValueError(f"expected input with {self.num_features} channels and 2, 3 or 4 "
                                 f"dimensions, got shape {tuple(input.shape)}")
            factor = 0.0 if self.momentum is None else self.momentum
            if self.track_running_stats:
                self.num_batches_tracked.array += 1
                if self.momentum is None:
                    factor = 1.0 / float(self.num_batches_tracked.array)
            return sync_batch_norm(input, self.running_mean, self.running_var, self.weight,
                                   self.bias, factor, self.eps, communicator("SyncBatchNorm"))

    @classmethod
    def convert_sync_batchnorm(cls, module):
        """``module`` with every BatchNorm1d / BatchNorm2d in it replaced by a SyncBatchNorm that
        holds the same Parameter and buffer objects (an optimizer made before keeps working);
        the module itself when it is one. The order of the children is kept."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats)
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                if getattr(module, name) is not None:
                    setattr(sync, name, getattr(module, name))
            sync.train(module.training)
            return sync
        for name, child in module._modules.items():
            if child is not None:
                module._modules[name] = cls.convert_sync_batchnorm(child)
        return module
