"""Optimizers and learning-rate schedules: ``from minidl import optim``."""
from . import lr_scheduler
from .algorithms import SGD, Adagrad, Adam, AdamW, RMSprop
from .lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, StepLR
from .optimizer import Optimizer
