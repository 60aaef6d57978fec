"""retrograd.data: embedded and user datasets, loaders, samplers and preprocessing."""

from .datasets import EMBEDDED, Split, digits, imbalanced_spirals, mnist1d, spirals
from .formats import DataError, load_path, read_csv, read_idx, read_npz
from .loader import DataLoader, TensorDataset
from .preprocessing import Standardizer
from .samplers import ClassBalancedSampler, WeightedRandomSampler


def load(source: str, label_column: str | None = None) -> Split:
    """An embedded dataset by name (digits, mnist1d, spirals, imbalanced-spirals) or user data
    from a path (CSV, NPZ or a folder of IDX files)."""
    if source in EMBEDDED:
        return EMBEDDED[source]()
    return load_path(source, label_column)


__all__ = ["Split", "digits", "mnist1d", "spirals", "imbalanced_spirals", "load", "load_path",
           "read_csv", "read_npz", "read_idx", "DataError", "TensorDataset", "DataLoader",
           "WeightedRandomSampler", "ClassBalancedSampler", "Standardizer"]
