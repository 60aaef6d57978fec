"""Map-style datasets and default_collate against torch.utils.data (the oracle), and the image
shapes of the embedded and IDX data against their sources."""

import gzip

import numpy as np
import pytest
import torch
import torch.utils.data as TD

import retrograd
from retrograd.data import DataLoader, Dataset, TensorDataset, default_collate, load_path
from retrograd.data.loader import default_convert
from test_data import idx_bytes


def as_numpy(batch):
    """A (nested) batch of retrograd or torch tensors as NumPy, keeping the structure."""
    if isinstance(batch, (retrograd.Tensor, torch.Tensor)):
        return batch.numpy()
    if isinstance(batch, dict):
        return {k: as_numpy(v) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(as_numpy(v) for v in batch)
    return batch


def assert_same(ours, theirs):
    assert type(ours) is type(theirs), (type(ours), type(theirs))
    if isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, (ours, theirs)
        np.testing.assert_array_equal(ours, theirs)
    elif isinstance(ours, dict):
        assert list(ours) == list(theirs)
        for key in ours:
            assert_same(ours[key], theirs[key])
    elif isinstance(ours, (tuple, list)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_same(a, b)
    else:
        assert ours == theirs


rng = np.random.default_rng(0)
SAMPLES = {
    "array and int label": [(rng.normal(size=(1, 4, 3)).astype(np.float32), int(i % 3))
                            for i in range(5)],
    "python floats and bools": [(float(i) / 3, bool(i % 2)) for i in range(4)],
    "numpy scalars": [(np.float32(i) / 7, np.int64(i), np.float64(i) / 3) for i in range(3)],
    "float64 arrays": [rng.normal(size=(2,)) for _ in range(3)],
    "uint8 images": [rng.integers(0, 255, (1, 2, 2), dtype=np.uint8) for _ in range(3)],
    "dicts": [{"x": np.full(3, i, dtype=np.float32), "y": i, "name": f"s{i}"}
              for i in range(4)],
    "lists": [[np.arange(2) + i, i * 0.5] for i in range(3)],
    "strings": ["a", "b", "c"],
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_default_collate_matches_torch(name):
    samples = SAMPLES[name]
    assert_same(as_numpy(default_collate(samples)), as_numpy(TD.default_collate(samples)))


def test_tensors_are_stacked_like_torch_tensors():
    ours = default_collate([(retrograd.tensor([1.0, 2.0]), 1), (retrograd.tensor([3.0, 4.0]), 0)])
    theirs = TD.default_collate([(torch.tensor([1.0, 2.0], dtype=torch.float32), 1),
                                 (torch.tensor([3.0, 4.0], dtype=torch.float32), 0)])
    assert_same(as_numpy(ours), as_numpy(theirs))


class Squares(Dataset):
    """A map-style dataset as a torch user writes it: (array, label) per index."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.array([i, i * i], dtype=np.float32), i % 2


class TorchSquares(TD.Dataset):
    def __init__(self, n):
        self.inner = Squares(n)

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return self.inner[i]


@pytest.mark.parametrize("batch_size,drop_last", [(4, False), (4, True), (1, False), (None, False)])
def test_a_map_style_dataset_batches_like_torchs_dataloader(batch_size, drop_last):
    ours = list(DataLoader(Squares(10), batch_size=batch_size, drop_last=drop_last))
    theirs = list(TD.DataLoader(TorchSquares(10), batch_size=batch_size, drop_last=drop_last))
    assert len(ours) == len(theirs) == len(DataLoader(Squares(10), batch_size=batch_size,
                                                      drop_last=drop_last))
    for a, b in zip(ours, theirs, strict=True):
        assert_same(as_numpy(a), as_numpy(b))


def test_default_convert_matches_torch():
    sample = (np.arange(3, dtype=np.int32), np.float32(2.5), 1.5, "s", {"a": np.ones(2)})
    assert_same(as_numpy(default_convert(sample)), as_numpy(TD.default_convert(sample)))


def test_a_plain_list_and_a_collate_fn_work_and_shuffle_covers_every_sample():
    samples = [(np.full(2, i, dtype=np.float32), i) for i in range(7)]
    retrograd.manual_seed(3)
    seen = [int(v) for _, y in DataLoader(samples, batch_size=3, shuffle=True) for v in y.numpy()]
    assert sorted(seen) == list(range(7))
    sums = list(DataLoader(samples, batch_size=4, collate_fn=lambda b: sum(y for _, y in b)))
    assert sums == [0 + 1 + 2 + 3, 4 + 5 + 6]


def test_tensor_dataset_indexes_one_sample_and_batches_as_before():
    x, y = np.arange(12, dtype=np.float32).reshape(6, 2), np.arange(6)
    data = TensorDataset(x, y)
    sample = data[4]
    np.testing.assert_array_equal(sample[0].numpy(), x[4])
    batches = list(DataLoader(data, batch_size=4))
    np.testing.assert_array_equal(batches[1][0].numpy(), x[4:])
    np.testing.assert_array_equal(batches[1][1].numpy(), y[4:])


@pytest.mark.parametrize("call,message", [
    (lambda: default_collate([np.zeros(2), np.zeros(3)]), r"different shapes"),
    (lambda: default_collate([(1, 2), (1,)]), r"different numbers of fields \[1, 2\]"),
    (lambda: default_collate([]), "no samples"),
    (lambda: DataLoader(Squares(3), batch_size=0), "batch_size must be a positive integer"),
    (lambda: DataLoader(Squares(3), batch_size=None, drop_last=True), "drop_last"),
])
def test_bad_batches_are_one_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(iter(range(3)), batch_size=2)


def test_digits_and_mnist1d_samples_have_image_shapes_that_match_their_sources():
    from sklearn.datasets import load_digits

    from retrograd.data import digits, mnist1d

    split = digits()
    assert split.sample_shape == (1, 8, 8) and split.x_train.shape[1] == 64
    images = split.images(split.x_test)
    assert images.shape == (len(split.x_test), 1, 8, 8)
    # every test image is one of scikit-learn's 8x8 images, pixel for pixel
    known = {img.astype(np.float32).tobytes() for img in load_digits().images}
    assert all(img[0].tobytes() in known for img in images)
    m = mnist1d()
    assert m.sample_shape == (1, 40) and m.images(m.x_train).shape == (4000, 1, 40)


def test_an_idx_folder_keeps_its_image_shape(tmp_path):
    rng = np.random.default_rng(1)
    train, test = rng.integers(0, 256, (6, 5, 3), np.uint8), rng.integers(0, 256, (4, 5, 3),
                                                                          np.uint8)
    for name, array in (("train-images-idx3-ubyte", train), ("t10k-images-idx3-ubyte", test),
                        ("train-labels-idx1-ubyte", np.array([0, 1] * 3, np.uint8)),
                        ("t10k-labels-idx1-ubyte", np.array([0, 1] * 2, np.uint8))):
        (tmp_path / (name + ".gz")).write_bytes(gzip.compress(idx_bytes(array, 0x08)))
    split = load_path(str(tmp_path))
    assert split.sample_shape == (1, 5, 3)
    np.testing.assert_array_equal(split.images(split.x_test)[:, 0], test.astype(np.float32))
