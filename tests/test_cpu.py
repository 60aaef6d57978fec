"""set_flush_denormal: float32 products below the normal range become exactly 0 when on."""

import numpy as np

import retrograd


def test_flush_denormal_turns_denormal_results_into_zero():
    tiny, scale = np.full(8, 1e-38, np.float32), np.float32(0.01)
    try:
        assert retrograd.set_flush_denormal(True)
        np.testing.assert_array_equal(tiny * scale, 0.0)
        assert retrograd.set_flush_denormal(False)
        # 1e-38 * 0.01 = 1e-40, representable only as a float32 denormal
        np.testing.assert_allclose(tiny * scale, 1e-40, rtol=1e-3)
    finally:
        retrograd.set_flush_denormal(False)
