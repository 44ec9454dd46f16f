"""Training: ``minidl.Trainer`` with callbacks and metrics."""
from .callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint, TensorBoardLogger
from .metrics import accuracy
from .trainer import Trainer
