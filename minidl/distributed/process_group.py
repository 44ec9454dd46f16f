"""The process group: every process of an ``mpiexec -n p`` launch, over MPI.COMM_WORLD.

minidl does not move bytes between machines itself: MPI (through mpi4py) does, on whatever
network the MPI library was built for (shared memory on one machine, TCP, InfiniBand).
mpi4py is imported only by ``init_process_group``, so ``import minidl`` needs no MPI.

Rank r of p calls the same collectives in the same order as every other rank; a collective
returns when its part is done. A process group of one (``mpiexec -n 1``) is a valid world;
a program started without any MPI launcher is refused (see ``init_process_group``).
"""
import os
import sys
import time
import traceback

import numpy as np

from ..tensor import Tensor

# environment variables by which MPI launchers tell a process its rank: MPICH's and Intel MPI's
# Hydra (PMI_RANK), Open MPI (OMPI_COMM_WORLD_RANK), PMIx-based launchers such as Slurm's
# srun --mpi=pmix (PMIX_RANK)
_LAUNCHER_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


class ReduceOp:
    """How ``all_reduce`` combines the ranks' tensors elementwise (PyTorch's names). AVG is the
    SUM divided by the world size."""

    SUM, PRODUCT, MIN, MAX, AVG = "sum", "product", "min", "max", "avg"


class _World:
    """The state of this process's group: the communicator and the excepthook it replaced."""

    comm = None
    previous_excepthook = None


def init_process_group(backend="mpi"):
    """Join the world of every process started by the same ``mpiexec`` (MPI.COMM_WORLD).

    Installs a ``sys.excepthook`` that prints an unhandled exception's traceback and then calls
    ``MPI.COMM_WORLD.Abort(1)``: the launcher ends every rank, so a rank that raises never leaves
    the others waiting forever in a collective. Errors when mpi4py is not installed, when the
    process was not started by an MPI launcher (no PMI_RANK / OMPI_COMM_WORLD_RANK / PMIX_RANK in
    its environment: ``python train.py`` would silently train a world of one), or when called
    twice without ``destroy_process_group`` in between.
    """
    if backend != "mpi":
        raise ValueError(f"init_process_group: backend {backend!r} is not supported; minidl "
                         "communicates through MPI only (backend='mpi')")
    if _World.comm is not None:
        raise RuntimeError("init_process_group: the process group is already initialised; call "
                           "destroy_process_group() first")
    if not any(name in os.environ for name in _LAUNCHER_VARIABLES):
        raise RuntimeError(
            "init_process_group: this process was not started by an MPI launcher (none of "
            f"{', '.join(_LAUNCHER_VARIABLES)} is set); run it as `mpiexec -n 4 python "
            f"{os.path.basename(sys.argv[0]) or 'script.py'} ...` (mpiexec -n 1 for one process)")
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise RuntimeError(
            "init_process_group: mpi4py is not installed; install the distributed extra: "
            "pip install 'minidl[distributed]' (mpi4py and the mpich wheel, which ships mpiexec)"
        ) from error
    _World.comm = MPI.COMM_WORLD
    _World.previous_excepthook = sys.excepthook
    sys.excepthook = _abort_world


def _abort_world(kind, value, trace):
    """sys.excepthook while initialised: print the traceback, then end every rank's process."""
    rank = _World.comm.Get_rank()
    sys.stderr.write(f"[minidl.distributed rank {rank}] unhandled exception, aborting all "
                     f"{_World.comm.Get_size()} ranks:\n")
    sys.stderr.write("".join(traceback.format_exception(kind, value, trace)))
    sys.stderr.flush()
    time.sleep(0.5)  # let the launcher forward the traceback before Abort tears the world down
    _World.comm.Abort(1)


def destroy_process_group():
    """Leave the process group: restore the excepthook; collectives raise again until the next
    ``init_process_group``. MPI itself is finalised by mpi4py when the process exits."""
    comm = communicator("destroy_process_group")
    comm.Barrier()
    sys.excepthook = _World.previous_excepthook
    _World.comm = _World.previous_excepthook = None


def is_initialized():
    return _World.comm is not None


def communicator(who):
    """The world's mpi4py communicator; a RuntimeError naming ``who`` before initialisation."""
    if _World.comm is None:
        raise RuntimeError(f"minidl.distributed.{who}: the process group is not initialised; call "
                           "minidl.distributed.init_process_group() first (in a program started "
                           "by mpiexec)")
    return _World.comm


def get_rank():
    return communicator("get_rank").Get_rank()


def get_world_size():
    return communicator("get_world_size").Get_size()


def barrier():
    """Return once every rank has called barrier()."""
    communicator("barrier").Barrier()


def _buffer(tensor, who):
    """The tensor's numpy array, which MPI reads and writes in place."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"minidl.distributed.{who}: expected a Tensor, got {type(tensor).__name__}")
    if not isinstance(tensor.array, np.ndarray):
        raise RuntimeError(f"minidl.distributed.{who}: only cpu tensors can be communicated, got a "
                           f"tensor on {tensor.device}; move it with .to('cpu')")
    if not tensor.array.flags.c_contiguous:
        raise RuntimeError(f"minidl.distributed.{who}: the tensor of shape {tensor.shape} is not "
                           "contiguous")
    return tensor.array


def all_reduce(tensor, op=ReduceOp.SUM):
    """Replace ``tensor`` on every rank by the elementwise ``op`` of all ranks' tensors."""
    comm = communicator("all_reduce")
    from mpi4py import MPI
    mpi_ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
               ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX}
    if op not in mpi_ops:
        raise ValueError(f"all_reduce: unknown op {op!r}; use one of ReduceOp.SUM, AVG, PRODUCT, "
                         "MIN, MAX")
    array = _buffer(tensor, "all_reduce")
    comm.Allreduce(MPI.IN_PLACE, array, op=mpi_ops[op])
    if op == ReduceOp.AVG:
        array /= array.dtype.type(comm.Get_size())
    return tensor


def broadcast(tensor, src=0):
    """Overwrite ``tensor`` on every rank with rank ``src``'s."""
    comm = communicator("broadcast")
    comm.Bcast(_buffer(tensor, "broadcast"), root=_check_rank(src, comm, "broadcast"))
    return tensor


def all_gather(tensor_list, tensor):
    """Fill ``tensor_list[r]`` on every rank with rank r's ``tensor`` (same shape and dtype on
    every rank; ``tensor_list`` holds world-size tensors of that shape and dtype)."""
    comm = communicator("all_gather")
    array = _buffer(tensor, "all_gather")
    if len(tensor_list) != comm.Get_size():
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors, the world "
                         f"{comm.Get_size()} ranks")
    for target in tensor_list:
        if target.shape != tensor.shape or target.dtype != tensor.dtype:
            raise ValueError(f"all_gather: tensor_list holds a {target.dtype} tensor of shape "
                             f"{target.shape}, the input is {tensor.dtype} {tensor.shape}")
    gathered = np.empty((comm.Get_size(),) + array.shape, dtype=array.dtype)
    comm.Allgather(array, gathered)
    for target, part in zip(tensor_list, gathered):
        _buffer(target, "all_gather")[...] = part
    return tensor_list


def all_gather_object(object_list, obj):
    """Fill ``object_list`` (world-size long) with every rank's picklable ``obj``, in rank order."""
    comm = communicator("all_gather_object")
    if len(object_list) != comm.Get_size():
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} entries, the "
                         f"world {comm.Get_size()} ranks")
    object_list[:] = comm.allgather(obj)
    return object_list


def broadcast_object_list(object_list, src=0):
    """Overwrite ``object_list`` on every rank with rank ``src``'s list of picklable objects
    (same length on every rank; the other ranks' entries are ignored)."""
    comm = communicator("broadcast_object_list")
    sent = comm.bcast(list(object_list), root=_check_rank(src, comm, "broadcast_object_list"))
    if len(sent) != len(object_list):
        raise ValueError(f"broadcast_object_list: rank {src} sent {len(sent)} objects, this rank's "
                         f"object_list holds {len(object_list)}")
    object_list[:] = sent
    return object_list


def _check_rank(rank, comm, who):
    if not 0 <= int(rank) < comm.Get_size():
        raise ValueError(f"{who}: rank {rank} is not in the world of {comm.Get_size()} ranks")
    return int(rank)
