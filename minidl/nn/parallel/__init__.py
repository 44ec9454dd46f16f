"""Training one model on many processes: ``from minidl.nn.parallel import DistributedDataParallel``."""
from .distributed import DistributedDataParallel
