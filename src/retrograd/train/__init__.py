"""retrograd.train: the training loop (fit, callbacks), the main job (TrainConfig, run),
trained runs (load_run), metrics and checkpoints."""

from .callbacks import (
    Callback,
    EarlyStopping,
    GradientClipping,
    LambdaCallback,
    LRSchedule,
    ProgressBar,
)
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_safetensors,
    save_checkpoint,
    save_safetensors,
)
from .config import TrainConfig
from .fit import History, Loop, evaluate, fit
from .job import run
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
from .saved_run import SavedRun, load_run
