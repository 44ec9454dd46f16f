"""Optimizers and learning-rate schedules: ``from minidl import optim``."""
from . import lr_scheduler
from .algorithms import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RMSprop
from .lbfgs import LBFGS
from .lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR, LRScheduler,
                           MultiStepLR, OneCycleLR, ReduceLROnPlateau, SequentialLR, StepLR)
from .optimizer import Optimizer
