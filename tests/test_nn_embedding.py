"""Embedding against torch: lookups of any index shape, repeated indices accumulate their
gradients, the padding_idx row gets none, max_norm renormalizes looked-up rows in place;
state_dict and from_pretrained as torch's."""

import numpy as np
import pytest
import torch

import retrograd
from oracle import check_layer, rel_err
from retrograd import nn
from retrograd.nn import functional as F

TF = torch.nn.functional


@pytest.mark.parametrize("index,padding_idx", [
    (np.array([[0, 4, 4, 1], [2, 2, 2, 0]]), None),
    (np.array([1, 3, 3, 0, 3]), 3),
    (np.array([[[5, 0]], [[5, 5]]]), -1),
    (np.zeros((0, 3), dtype=np.int64), None),
])
def test_embedding_matches_torch(index, padding_idx):
    weight = np.random.default_rng(0).standard_normal((6, 4))
    check_layer(lambda w, i: F.embedding(i, w, padding_idx=padding_idx),
                lambda w, i: TF.embedding(i, w, padding_idx=padding_idx),
                [weight, index], grad_of=[0])


def test_embedding_max_norm_renormalizes_like_torch():
    weight = np.random.default_rng(1).standard_normal((5, 3)) * 3
    index = np.array([0, 2, 2, 4])
    ours, theirs = retrograd.tensor(weight.copy()), torch.tensor(weight.copy())
    out = F.embedding(retrograd.tensor(index), ours, max_norm=1.5)
    expected = TF.embedding(torch.tensor(index), theirs, max_norm=1.5)
    assert rel_err(out, expected) < 1e-12
    assert rel_err(ours.numpy(), theirs) < 1e-12  # the table itself changed, in place


def test_embedding_module_state_dict_and_from_pretrained():
    ours, theirs = nn.Embedding(7, 3, padding_idx=2), torch.nn.Embedding(7, 3, padding_idx=2)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    np.testing.assert_array_equal(ours.weight.numpy()[2], np.zeros(3))
    assert repr(ours) == repr(theirs)
    table = np.arange(12.0).reshape(4, 3)
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(retrograd.tensor([3, 0])).numpy(), table[[3, 0]])


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.embedding(retrograd.tensor([0, 7]), retrograd.zeros(5, 2)), IndexError,
     "index 7 is out of range for 5 embeddings"),
    (lambda: F.embedding(retrograd.tensor([0.5]), retrograd.zeros(5, 2)), TypeError,
     "indices must be integers"),
    (lambda: nn.Embedding(4, 2, padding_idx=4), ValueError, r"padding_idx 4 must be within"),
])
def test_bad_embedding_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
