"""Datasets, file formats, loaders and samplers."""

import gzip

import numpy as np
import pytest

import retrograd
from retrograd import data as D


def test_digits_split_is_fixed_stratified_and_complete():
    from sklearn.datasets import load_digits

    ref = load_digits()
    split = D.digits()
    assert split.x_train.shape == (1438, 64) and split.x_test.shape == (359, 64)
    # every sample lands in exactly one side, with its own label
    both = np.concatenate([split.x_train, split.x_test])
    labels = np.concatenate([split.y_train, split.y_test])
    order_ref = np.lexsort(ref.data.T)
    order = np.lexsort(both.T)
    np.testing.assert_array_equal(both[order], ref.data[order_ref].astype(np.float32))
    np.testing.assert_array_equal(np.sort(labels), np.sort(ref.target))
    # 20% of each class in the test split
    np.testing.assert_array_equal(np.bincount(split.y_test),
                                  np.round(0.2 * np.bincount(ref.target)).astype(int))
    again = D.digits()
    np.testing.assert_array_equal(again.x_test, split.x_test)


def test_mnist1d_is_the_packages_procedural_dataset_and_leaves_numpy_global_rng_alone():
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    split = D.mnist1d()
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    ref = make_dataset(get_dataset_args())
    np.testing.assert_allclose(split.x_train, ref["x"].astype(np.float32))
    np.testing.assert_array_equal(split.y_test, ref["y_test"])
    assert split.x_train.shape == (4000, 40) and split.x_test.shape == (1000, 40)


def test_imbalanced_spirals_has_the_requested_ratio():
    split = D.imbalanced_spirals(minority=0.05, n_samples=2000)
    counts = np.bincount(np.concatenate([split.y_train, split.y_test]))
    np.testing.assert_allclose(counts / counts.sum(), [0.95, 0.05], atol=0.002)


def write(path, text):
    path.write_text(text)
    return str(path)


def test_csv_label_last_or_named(tmp_path):
    path = write(tmp_path / "d.csv", "a,b,label\n1,2,0\n3,4.5,1\n5,6,1\n")
    x, y = D.read_csv(path)
    np.testing.assert_array_equal(x, [[1, 2], [3, 4.5], [5, 6]])
    np.testing.assert_array_equal(y, [0, 1, 1])
    path = write(tmp_path / "e.csv", "label,a\n2,1.5\n0,2.5\n")
    x, y = D.read_csv(path, label_column="label")
    np.testing.assert_array_equal(x, [[1.5], [2.5]])
    np.testing.assert_array_equal(y, [2, 0])


@pytest.mark.parametrize("text,message", [
    ("a,b,y\n1,2,0\n1,abc,1\n", r"row 3, column 'b': 'abc' is not a number"),
    ("a,b,y\n1,2,0\n1,nan,1\n", r"row 3, column 'b' is NaN"),
    ("a,b,y\n1,2,0\n1,2,1.5\n", r"label 1.5 at row 3 is not a non-negative integer"),
    ("a,b,y\n1,2,0\n1,2\n", r"row 3 has 2 fields, the header has 3"),
    ("a,b,y\n", r"at least one data row"),
])
def test_csv_errors_name_the_bad_value(tmp_path, text, message):
    with pytest.raises(D.DataError, match=message):
        D.read_csv(write(tmp_path / "bad.csv", text))


def test_csv_unknown_label_column(tmp_path):
    with pytest.raises(D.DataError, match="no column named 'z'"):
        D.read_csv(write(tmp_path / "d.csv", "a,y\n1,0\n"), label_column="z")


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(n.to_bytes(4, "big")
                                                        for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_reads_mnist_layout(tmp_path, gz):
    rng = np.random.default_rng(0)
    parts = {"train-images-idx3-ubyte": rng.integers(0, 256, (6, 4, 4), dtype=np.uint8),
             "train-labels-idx1-ubyte": np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8),
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
             "t10k-labels-idx1-ubyte": np.array([2, 1, 0], dtype=np.uint8)}
    for name, array in parts.items():
        raw = idx_bytes(array, 0x08)
        if gz:
            (tmp_path / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (tmp_path / name).write_bytes(raw)
    split = D.load(str(tmp_path))
    np.testing.assert_array_equal(split.x_train, parts["train-images-idx3-ubyte"]
                                  .reshape(6, 16).astype(np.float32))
    np.testing.assert_array_equal(split.y_test, [2, 1, 0])


def test_idx_float_and_bad_magic(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    (tmp_path / "f.idx").write_bytes(idx_bytes(a, 0x0D))
    np.testing.assert_array_equal(D.read_idx(str(tmp_path / "f.idx")), a)
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(D.DataError, match="bad magic"):
        D.read_idx(str(tmp_path / "bad.idx"))


def test_npz_with_and_without_test_split(tmp_path):
    x, y = np.random.default_rng(0).random((50, 3)), np.repeat([0, 1], 25)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    split = D.load(str(tmp_path / "a.npz"))
    assert len(split.y_train) == 40 and len(split.y_test) == 10
    np.savez(tmp_path / "b.npz", x=x, y=y, x_test=x[:5], y_test=y[:5])
    split = D.load(str(tmp_path / "b.npz"))
    assert len(split.y_train) == 50 and len(split.y_test) == 5
    np.savez(tmp_path / "c.npz", features=x)
    with pytest.raises(D.DataError, match="needs arrays 'x' and 'y'"):
        D.load(str(tmp_path / "c.npz"))


def test_standardizer_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train, test = rng.normal(3, 2, (500, 4)), rng.normal(-1, 5, (100, 4))
    s = D.Standardizer().fit(train)
    np.testing.assert_allclose(s.transform(train).mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(s.transform(test), (test - train.mean(0)) / train.std(0),
                               rtol=1e-4)
    constant = np.ones((5, 2))
    np.testing.assert_array_equal(D.Standardizer().fit(constant).transform(constant), 0)


def test_dataloader_covers_every_row_once_per_epoch_and_reproduces_with_seed():
    x = np.arange(10)[:, None].astype(np.float32)
    loader = D.DataLoader(D.TensorDataset(x, np.arange(10)), batch_size=4, shuffle=True)
    retrograd.manual_seed(5)
    first = np.concatenate([b[1].numpy() for b in loader])
    assert sorted(first.tolist()) == list(range(10)) and len(loader) == 3
    retrograd.manual_seed(5)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in loader]), first)
    dropped = D.DataLoader(D.TensorDataset(x, np.arange(10)), batch_size=4, drop_last=True)
    assert [len(b[0]) for b in dropped] == [4, 4] and len(dropped) == 2


def test_class_balanced_sampler_draws_classes_uniformly_on_95_5_data():
    labels = np.array([0] * 950 + [1] * 50)
    sampler = D.ClassBalancedSampler(labels, num_samples=20000,
                                     generator=np.random.default_rng(0))
    freq = np.bincount(labels[list(sampler)], minlength=2) / 20000
    # binomial standard error at p = 0.5 and n = 20000 is 0.0035
    np.testing.assert_allclose(freq, [0.5, 0.5], atol=0.015)


def test_weighted_random_sampler_follows_weights():
    weights = np.array([1.0, 3.0, 0.0, 6.0])
    sampler = D.WeightedRandomSampler(weights, 40000, generator=np.random.default_rng(1))
    freq = np.bincount(list(sampler), minlength=4) / 40000
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.01)
    with pytest.raises(ValueError, match="non-negative"):
        D.WeightedRandomSampler([1.0, -1.0], 5)
