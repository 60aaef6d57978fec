"""The optimizers' updates flush denormal floats to zero (optim/optimizer.py, cpu.FlushDenormals)
and leave the thread's floating-point mode as they found it.

Oracles: torch.optim.Adam from the same state (it keeps gradual underflow: its moments hold the
denormals that ours flush to exactly 0, and both agree on the weights), and the hand value
1e-38 * 0.01 = 1e-40, which IEEE arithmetic keeps as a denormal and a flushing thread makes 0.
"""

import numpy as np
import pytest
import torch

import retrograd
from retrograd import nn

DENORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38
TINY, SCALE = np.float32(1e-38), np.float32(0.01)


def ieee_mode() -> bool:
    """Whether this thread keeps denormals: 1e-38 * 0.01 is 1e-40, not 0."""
    return TINY * SCALE != 0


def adam_pair(flush: bool):
    """retrograd's and torch's Adam on the same float32 weights, both after one step, then with
    every exp_avg set to a denormal and a zero gradient for one of the rows."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    g0 = rng.standard_normal((3, 4)).astype(np.float32)
    p = nn.Parameter(retrograd.tensor(w0.copy()))
    tp = torch.nn.Parameter(torch.tensor(w0.copy()))
    opt, topt = retrograd.optim.Adam([p], lr=0.01), torch.optim.Adam([tp], lr=0.01)
    if not flush:  # the default flushes
        opt.flush_denormal = False
    for param, o, grad in ((p, opt, retrograd.tensor(g0)), (tp, topt, torch.tensor(g0))):
        param.grad = grad
        o.step()
    state = topt.state_dict()
    state["state"][0]["exp_avg"].fill_(DENORMAL)
    topt.load_state_dict(state)
    opt.load_state_dict(state)
    g1 = g0.copy()
    g1[0] = 0.0  # row 0: its moment only decays, 0.9 x DENORMAL, still denormal under IEEE
    p.grad, tp.grad = retrograd.tensor(g1), torch.tensor(g1)
    opt.step()
    topt.step()
    return opt, p, topt, tp


def test_adam_flushes_a_decaying_denormal_moment_to_zero_and_matches_torch_on_weights():
    opt, p, topt, tp = adam_pair(flush=True)
    ours = np.asarray(opt.state_dict()["state"][0]["exp_avg"])
    theirs = topt.state_dict()["state"][0]["exp_avg"].numpy()
    assert np.all((theirs[0] != 0) & (np.abs(theirs[0]) < np.finfo(np.float32).tiny))
    np.testing.assert_array_equal(ours[0], 0.0)  # torch keeps 9e-40 there
    np.testing.assert_allclose(ours[1:], theirs[1:], rtol=1e-6)
    np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert ieee_mode()  # the step put the thread's mode back


def test_flush_denormal_false_keeps_torchs_denormals():
    opt, _, topt, _ = adam_pair(flush=False)
    ours = np.asarray(opt.state_dict()["state"][0]["exp_avg"])
    theirs = topt.state_dict()["state"][0]["exp_avg"].numpy()
    assert np.all(ours[0] != 0)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-3, atol=0)


def test_a_step_keeps_a_flushing_thread_flushing():
    try:
        assert retrograd.set_flush_denormal(True)
        adam_pair(flush=True)
        assert not ieee_mode()
    finally:
        retrograd.set_flush_denormal(False)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_a_failing_step_restores_ieee_mode(name):
    p = nn.Parameter(retrograd.zeros(2, 3))
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    opt = getattr(retrograd.optim, name)([p], lr=0.1, **kwargs)
    p.grad = retrograd.ones(3, 2)  # the wrong shape: the update raises
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        opt.step()
    assert ieee_mode()
