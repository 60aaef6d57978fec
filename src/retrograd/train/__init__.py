"""retrograd.train: the training loop, metrics and checkpoints."""

from .checkpoint import (
    load_checkpoint,
    load_safetensors,
    save_checkpoint,
    save_safetensors,
)
from .fit import History, evaluate, fit
from .metrics import (
    accuracy,
    balanced_accuracy,
    calibration_bins,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    nll,
    per_class_recall,
)
