"""Tests for simclr_tf.heads."""

import numpy as np
import pytest

from simclr_tf.heads import ProjectionHead
from tests import layer_checks
from tests.layer_checks import LayerCase

FEATURES = np.random.default_rng(0).random((4, 10)).astype("float32")
LAYER_CASES = [
    LayerCase("nonlinear-training", lambda: ProjectionHead(output_dim=6), FEATURES, {"training": True}),
    LayerCase("nonlinear-3-layers", lambda: ProjectionHead(num_layers=3, hidden_dim=12, output_dim=6), FEATURES),
    LayerCase("linear", lambda: ProjectionHead(mode="linear", output_dim=4), FEATURES),
    LayerCase("none", lambda: ProjectionHead(mode="none"), FEATURES),
]


@layer_checks.parametrize(LAYER_CASES)
def test_layer_checks(case, check, tmp_path):
    layer_checks.run_check(case, check, tmp_path)


class TestProjectionHead:
    def test_nonlinear_layout_matches_the_paper(self):
        head = ProjectionHead(num_layers=2, output_dim=8)
        z = head(np.random.rand(4, 16).astype("float32"), training=True)
        assert tuple(z.shape) == (4, 8)
        assert [d.units for d in head.dense_layers] == [16, 8]  # hidden = input width
        assert all(not d.use_bias for d in head.dense_layers)
        assert head.norm_layers[0].center and not head.norm_layers[-1].center

    def test_linear_and_none_modes(self):
        x = np.random.rand(3, 10).astype("float32")
        linear = ProjectionHead(mode="linear", output_dim=4)
        assert tuple(linear(x).shape) == (3, 4) and len(linear.dense_layers) == 1
        none = ProjectionHead(mode="none")
        np.testing.assert_allclose(none(x), x)
        assert not none.trainable_weights

    def test_hidden_outputs_for_v2_fine_tuning(self):
        head = ProjectionHead(num_layers=3, hidden_dim=12, output_dim=6)
        x = np.random.rand(5, 10).astype("float32")
        z, hidden = head(x, return_hidden=True)
        assert [tuple(t.shape) for t in hidden] == [(5, 10), (5, 12), (5, 12), (5, 6)]
        np.testing.assert_allclose(head.hidden_output(x, 1), hidden[1], atol=1e-6)
        np.testing.assert_allclose(head.hidden_output(x, 3), z, atol=1e-6)
        with pytest.raises(ValueError, match="layer_index"):
            head.hidden_output(x, 4)

    @pytest.mark.parametrize(
        "kwargs, match",
        [(dict(mode="mlp"), "mode"), (dict(num_layers=0), "num_layers"),
         (dict(output_dim=0), "output_dim"), (dict(hidden_dim=-3), "hidden_dim")],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            ProjectionHead(**kwargs)
