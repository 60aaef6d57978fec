"""retrograd.data: embedded and user datasets, loaders, samplers and preprocessing."""

from .datasets import (
    EMBEDDED,
    Split,
    check_split_sizes,
    digits,
    imbalanced_spirals,
    min_rows_per_class,
    mnist1d,
    spirals,
)
from .errors import DataError
from .formats import feature_matrix, load_path, read_csv, read_idx, read_npz
from .inputs import load_labeled, read_features
from .labels import MAX_CLASSES
from .loader import DataLoader, Dataset, TensorDataset, default_collate, default_convert
from .preprocessing import Standardizer
from .safetensors_file import check_state, load_safetensors
from .samplers import ClassBalancedSampler, WeightedRandomSampler


def load(source: str, label_column: str | None = None) -> Split:
    """An embedded dataset by name (digits, mnist1d, spirals, imbalanced-spirals) or user data
    from a path (CSV, NPZ or a folder of IDX files)."""
    if source in EMBEDDED:
        return EMBEDDED[source]()
    return load_path(source, label_column)


__all__ = ["Split", "digits", "mnist1d", "spirals", "imbalanced_spirals", "load", "load_path",
           "load_labeled", "read_features", "read_csv", "read_npz", "read_idx",
           "feature_matrix", "check_split_sizes", "min_rows_per_class", "MAX_CLASSES",
           "load_safetensors", "check_state", "DataError", "Dataset", "TensorDataset", "DataLoader",
           "default_collate", "default_convert",
           "WeightedRandomSampler", "ClassBalancedSampler", "Standardizer"]
