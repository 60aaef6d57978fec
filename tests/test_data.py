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


# ------------------------------------------------------------------------------ label values

@pytest.mark.parametrize("labels,message", [
    ("0,100000,0,1,0,1", r"label 100000 at row 3 is too large: class indices run from 0 to 4095"),
    ("0,1e30,0,1,0,1", r"label 1e\+30 at row 3 is too large"),
    ("0,1,-1,1,0,1", r"label -1 at row 4 is not a non-negative integer"),
    ("0,1,0,inf,0,1", r"label inf at row 5"),
    ("0,1,0,7,0,1", r"label 7 at row 5 makes 8 classes, more than the 6 rows of data"),
])
def test_labels_out_of_range_are_refused_while_loading(tmp_path, labels, message):
    rows = "".join(f"{i},{v}\n" for i, v in enumerate(labels.split(",")))
    with pytest.raises(D.DataError, match=message) as info:
        D.load(write(tmp_path / "d.csv", "a,y\n" + rows))
    assert "\n" not in str(info.value) and "d.csv" in str(info.value)


def test_labels_beyond_int64_in_npz_are_refused_not_wrapped(tmp_path):
    x = np.zeros((6, 2))
    np.savez(tmp_path / "u.npz", x=x, y=np.array([0, 1, 0, 2 ** 63, 0, 1], dtype=np.uint64))
    with pytest.raises(D.DataError, match=r"'y': label 9223372036854775808 at row 4 is too "
                                          "large"):
        D.load(str(tmp_path / "u.npz"))
    np.savez(tmp_path / "f.npz", x=x, y=np.array([0, 1, 0, 1e30, 0, 1]))
    with pytest.raises(D.DataError, match=r"label 1e\+30 at row 4"):
        D.load(str(tmp_path / "f.npz"))


def test_sparse_class_indices_within_the_rows_are_kept_as_given(tmp_path):
    """Labels {0, 5} in 12 rows: six classes (1-4 empty), as a model with 6 outputs sees them;
    column-vector and boolean labels are read as one label per row."""
    x = np.arange(24.0).reshape(12, 2)
    np.savez(tmp_path / "s.npz", x=x, y=np.array([0, 5] * 6)[:, None])
    split = D.load(str(tmp_path / "s.npz"))
    assert split.n_classes == 6 and split.class_names is None
    assert sorted(np.concatenate([split.y_train, split.y_test]).tolist()) == [0] * 6 + [5] * 6
    np.savez(tmp_path / "b.npz", x=x, y=np.array([True, False] * 6))
    assert D.load(str(tmp_path / "b.npz")).n_classes == 2


def test_class_names_map_to_sorted_indices_and_are_kept(tmp_path):
    import csv

    rng = np.random.default_rng(0)
    names = ["dog", "cat", "bird"]
    lines = ["f1,f2,animal"]
    for i in range(30):
        lines.append(f"{rng.normal():.4f},{i},{' ' if i % 4 == 0 else ''}{names[i % 3]}")
    path = write(tmp_path / "pets.csv", "\n".join(lines) + "\n")
    split = D.load(path)
    assert split.class_names == ["bird", "cat", "dog"] and split.n_classes == 3
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    by_row = {int(r[1]): r[2].strip() for r in rows}  # f2 is the row number
    for x, y in ((split.x_train, split.y_train), (split.x_test, split.y_test)):
        for features, label in zip(x, y, strict=True):
            assert split.class_names[label] == by_row[int(features[1])]
    assert len(split.y_train) + len(split.y_test) == 30
    np.testing.assert_array_equal(np.bincount(split.y_test), [2, 2, 2])


@pytest.mark.parametrize("text,message", [
    ("a,y\n1,cat\n2,1\n3,dog\n", r"labels mix numbers and names \('1' at row 3, 'cat' at "
                                 r"row 2\)"),
    ("a,y\n1,cat\n2,\n3,dog\n", r"the label at row 3 is empty"),
])
def test_label_columns_that_mix_or_miss_values_are_refused(tmp_path, text, message):
    with pytest.raises(D.DataError, match=message):
        D.load(write(tmp_path / "m.csv", text))


def test_npz_test_labels_use_the_training_mapping(tmp_path):
    x = np.zeros((6, 2))
    y = np.array(["cow", "dog", "cow", "dog", "cow", "dog"])
    np.savez(tmp_path / "a.npz", x=x, y=y, x_test=x[:2], y_test=np.array(["dog", "dog"]))
    split = D.load(str(tmp_path / "a.npz"))
    assert split.class_names == ["cow", "dog"]
    np.testing.assert_array_equal(split.y_test, [1, 1])  # "dog" is 1 in training, not 0
    np.savez(tmp_path / "b.npz", x=x, y=y, x_test=x[:2], y_test=np.array(["dog", "cat"]))
    with pytest.raises(D.DataError, match=r"'y_test': label 'cat' at row 2 is not one of the "
                                          r"training labels"):
        D.load(str(tmp_path / "b.npz"))


# ------------------------------------------------------------------------ split sizes

def test_min_rows_per_class_is_the_smallest_class_both_sides_keep():
    # by hand: round(0.2 * 2) = 0, round(0.2 * 3) = 1; round(0.1 * 5) = 0 (half to even)
    assert D.min_rows_per_class(0.2) == 3 and D.min_rows_per_class(0.1) == 6
    assert D.min_rows_per_class(0.5) == 2 and D.min_rows_per_class(0.9) == 5


def test_tiny_data_never_gives_an_empty_or_classless_split(tmp_path):
    path = write(tmp_path / "six.csv", "a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(6)))
    with pytest.raises(D.DataError, match=r"six.csv: 6 rows; class 0 has 2, which a 0.2 test "
                                          r"split divides into 2 \+ 0 \(3 classes are that "
                                          r"small\); every class needs at least 3 rows"):
        D.load(path)
    np.savez(tmp_path / "t.npz", x=np.zeros((20, 1)), y=np.repeat(np.arange(10), 2))
    with pytest.raises(D.DataError, match="every class needs at least 3 rows"):
        D.load(str(tmp_path / "t.npz"))
    names = write(tmp_path / "n.csv", "a,y\n" + "".join(f"{i},{'ab'[i < 3]}\n"
                                                         for i in range(5)))
    with pytest.raises(D.DataError, match="class 'a' has 2"):
        D.load(names)
    # three rows a class is enough: one of each in the test split
    split = D.load(write(tmp_path / "ok.csv", "a,y\n" + "".join(f"{i},{i % 2}\n"
                                                                for i in range(6))))
    np.testing.assert_array_equal(np.bincount(split.y_test), [1, 1])
    np.testing.assert_array_equal(np.bincount(split.y_train), [2, 2])
    with pytest.raises(D.DataError, match="every class needs at least"):
        D.spirals(n_samples=4)


# ----------------------------------------------------------------------- evaluation files

def test_load_labeled_reads_the_whole_file(tmp_path):
    rows = [(i * 0.5, i % 3) for i in range(11)]
    path = write(tmp_path / "e.csv", "a,y\n" + "".join(f"{a},{b}\n" for a, b in rows))
    x, y = D.load_labeled(path)
    np.testing.assert_array_equal(x[:, 0], [a for a, _ in rows])
    np.testing.assert_array_equal(y, [b for _, b in rows])
    with pytest.raises(D.DataError, match=r"label 2 at row 4 is not a class of the model "
                                          r"\(0 to 1\)"):
        D.load_labeled(path, n_classes=2)

    x_all = np.arange(12.0).reshape(6, 2)
    np.savez(tmp_path / "w.npz", x=x_all, y=np.arange(6) % 2)
    x, y = D.load_labeled(str(tmp_path / "w.npz"))
    np.testing.assert_array_equal(x, x_all)
    np.savez(tmp_path / "t.npz", x=x_all, y=np.arange(6) % 2, x_test=x_all[:1], y_test=[1])
    x, y = D.load_labeled(str(tmp_path / "t.npz"))  # the file's own test part
    np.testing.assert_array_equal(x, x_all[:1])
    np.testing.assert_array_equal(y, [1])


def test_load_labeled_idx_folder_is_its_t10k_files(tmp_path):
    test_images = np.arange(3 * 4, dtype=np.uint8).reshape(3, 2, 2)
    for name, array in {"train-images-idx3-ubyte": np.zeros((5, 2, 2), np.uint8),
                        "train-labels-idx1-ubyte": np.zeros(5, np.uint8),
                        "t10k-images-idx3-ubyte": test_images,
                        "t10k-labels-idx1-ubyte": np.array([2, 0, 1], np.uint8)}.items():
        (tmp_path / name).write_bytes(idx_bytes(array, 0x08))
    x, y = D.load_labeled(str(tmp_path))
    np.testing.assert_array_equal(x, test_images.reshape(3, 4))
    np.testing.assert_array_equal(y, [2, 0, 1])


def test_load_labeled_maps_names_the_way_the_model_was_trained(tmp_path):
    path = write(tmp_path / "e.csv", "a,y\n1,dog\n2,dog\n3,bird\n")
    x, y = D.load_labeled(path, class_names=["bird", "cat", "dog"])
    np.testing.assert_array_equal(y, [2, 2, 0])  # not 1, 1, 0 (this file's own order)
    with pytest.raises(D.DataError, match=r"label 'bird' at row 4 is not one of the classes "
                                          r"the model was trained on \(cat, dog\)"):
        D.load_labeled(path, class_names=["cat", "dog"])
    with pytest.raises(D.DataError, match=r"labels are names \(bird, dog\), but the model was "
                                          r"trained on class indices"):
        D.load_labeled(path)
    with pytest.raises(D.DataError, match="no rows|at least one data row"):
        D.load_labeled(write(tmp_path / "empty.csv", "a,y\n"))


# ------------------------------------------------------------------------- predict's input

def test_read_features_with_and_without_a_label_column(tmp_path):
    path = write(tmp_path / "p.csv", "a,b,c\n1,2,3\n4,5,6\n")
    x, y = D.read_features(path, 3)
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])
    assert y is None
    x, y = D.read_features(path, 2)  # one more column: the last is the label
    np.testing.assert_array_equal(x, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(y, [3, 6])
    x, y = D.read_features(path, 2, label_column="a")
    np.testing.assert_array_equal(x, [[2, 3], [5, 6]])
    np.testing.assert_array_equal(y, [1, 4])
    named = write(tmp_path / "n.csv", "a,b,kind\n1,2,dog\n3,4,cat\n")
    x, y = D.read_features(named, 2, class_names=["cat", "dog"])
    np.testing.assert_array_equal(y, [1, 0])


def test_read_features_header_and_width_problems_are_one_line(tmp_path):
    numeric = write(tmp_path / "h.csv", "1,2,3\n4,5,6\n")
    with pytest.raises(D.DataError, match=r"h.csv: the first row \(1, 2, 3\) is all numbers.*"
                                          r"--no-header"):
        D.read_features(numeric, 3)
    x, y = D.read_features(numeric, 3, header=False)
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])
    assert y is None
    wide = write(tmp_path / "w.csv", ",".join(f"f{i}" for i in range(64)) + "\n"
                 + ",".join("0" * 64) + "\n")
    with pytest.raises(D.DataError, match=r"w.csv has 64 columns, the model expects 40 "
                                          r"feature columns"):
        D.read_features(wide, 40)
    with pytest.raises(D.DataError, match=r"63 feature columns besides the label column 'f0', "
                                          r"the model expects 40"):
        D.read_features(wide, 40, label_column="f0")


def test_read_features_npz(tmp_path):
    x_all = np.arange(6.0).reshape(3, 2)
    np.savez(tmp_path / "x.npz", x=x_all)
    x, y = D.read_features(str(tmp_path / "x.npz"), 2)
    np.testing.assert_array_equal(x, x_all)
    assert y is None
    np.savez(tmp_path / "xy.npz", x=x_all, y=np.array(["b", "a", "b"]))
    x, y = D.read_features(str(tmp_path / "xy.npz"), 2, class_names=["a", "b"])
    np.testing.assert_array_equal(y, [1, 0, 1])
    with pytest.raises(D.DataError, match=r"'x' has 2 features per row, the model expects 5"):
        D.read_features(str(tmp_path / "x.npz"), 5)


def test_csv_saved_by_excel_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffsize,weight\n1,10\n2,20\n".encode())
    x, y = D.read_features(str(path), 1, label_column="size")  # not "\ufeffsize"
    np.testing.assert_array_equal(x, [[10], [20]])
    np.testing.assert_array_equal(y, [1, 2])
    path.write_bytes("\ufeff1,2\n3,4\n".encode())
    x, _ = D.read_features(str(path), 2, header=False)
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])


def test_read_features_with_the_models_label_column_name(tmp_path):
    """The model's label column (from training) is dropped when present, not required."""
    features_only = write(tmp_path / "f.csv", "a,b\n1,2\n3,4\n")
    x, y = D.read_features(features_only, 2, label_column="kind")
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    assert y is None
    with pytest.raises(D.DataError, match=r"one more than the model's 1 features, but no "
                                          r"column named 'kind'"):
        D.read_features(features_only, 1, label_column="kind")
    labeled = write(tmp_path / "l.csv", "kind,a,b\n1,2,3\n0,4,5\n")
    x, y = D.read_features(labeled, 2, label_column="kind")
    np.testing.assert_array_equal(x, [[2, 3], [4, 5]])
    np.testing.assert_array_equal(y, [1, 0])


def test_paths_may_be_pathlike(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(10)))
    assert len(D.load_path(path).y_test) == 2
    x, y = D.load_labeled(path)
    assert x.shape == (10, 1) and D.read_features(path, 1)[1].shape == (10,)
