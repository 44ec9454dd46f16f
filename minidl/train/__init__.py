"""Training: ``minidl.Trainer`` with callbacks and metrics."""
from .callbacks import Callback, EarlyStopping, ModelCheckpoint
from .metrics import accuracy
from .trainer import Trainer
