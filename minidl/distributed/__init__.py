"""Data-parallel training over MPI: ``import minidl.distributed as dist`` (PyTorch's names).

Start the program with ``mpiexec -n 4 python train.py``; in it, ``dist.init_process_group()``,
wrap the model in ``minidl.nn.parallel.DistributedDataParallel`` and give each rank its shard
of the data with ``minidl.data.DistributedSampler``. Needs the ``distributed`` extra (mpi4py
and the mpich wheel, which ships ``mpiexec``); importing this package does not.
"""
from .forest import fit_forest
from .process_group import (ReduceOp, all_gather, all_gather_object, all_reduce, barrier, broadcast,
                            broadcast_object_list, destroy_process_group, get_rank, get_world_size,
                            init_process_group, is_initialized)
