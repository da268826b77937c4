import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.losses import NTXentLoss, nt_xent
from tests import layer_checks


def numpy_nt_xent(z1, z2, temperature):
    """Direct transcription of the paper's eq. (1), averaged over 2N anchors."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    sim = z @ z.T / temperature
    losses, hits, entropies = [], [], []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]
        logits = sim[i, others]
        log_denominator = np.log(np.sum(np.exp(logits)))
        losses.append(log_denominator - sim[i, j])
        hits.append(others[int(np.argmax(logits))] == j)
        p = np.exp(logits - log_denominator)
        entropies.append(-np.sum(p * np.log(p)))
    return np.mean(losses), np.mean(hits), np.mean(entropies)


@pytest.mark.parametrize("batch", [1, 2, 5, 16])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
def test_matches_numpy_reference(batch, temperature):
    rng = np.random.default_rng(batch * 100 + int(temperature * 100))
    z1 = rng.normal(size=(batch, 7)).astype("float32")
    z2 = (z1 + 0.5 * rng.normal(size=(batch, 7))).astype("float32")
    loss, metrics = nt_xent(z1, z2, temperature, return_metrics=True)
    ref_loss, ref_acc, ref_entropy = numpy_nt_xent(z1, z2, temperature)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(metrics["contrastive_acc"]), ref_acc, atol=1e-6)
    np.testing.assert_allclose(
        float(metrics["contrastive_entropy"]), ref_entropy, rtol=1e-4, atol=1e-5
    )


def test_batch_one_has_no_negatives_and_zero_loss():
    z = np.array([[1.0, 2.0]], "float32")
    assert float(nt_xent(z, -z, 0.1)) == pytest.approx(0.0, abs=1e-6)


def test_hand_made_orthogonal_pairs():
    # Identical views of orthogonal vectors: positive logit 1/t, all others 0.
    z = np.eye(3, dtype="float32")
    t = 0.5
    expected = -np.log(np.exp(1 / t) / (np.exp(1 / t) + 4))
    assert float(nt_xent(z, z, t)) == pytest.approx(expected, rel=1e-5)


def test_is_half_of_the_authors_sum_of_two_directions():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(2, 6, 4)).astype("float32")
    ours = float(nt_xent(z1, z2, 0.2))
    # The authors' TF2 code (objective.py, add_contrastive_loss): loss_a + loss_b,
    # each the mean over N anchors of one direction, written out here.
    a = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    b = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    masks = np.eye(len(a)) * 1e9

    def direction(x, y):
        logits = np.concatenate([x @ y.T, x @ x.T - masks], axis=1) / 0.2
        log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return -np.mean(np.diag(log_softmax[:, :len(x)]))

    authors = direction(a, b) + direction(b, a)
    assert 2 * ours == pytest.approx(authors, rel=1e-5)


def test_mixed_precision_inputs_give_float32_loss():
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(2, 4, 8)).astype("float32")
    loss16 = nt_xent(tf.cast(z1, tf.bfloat16), tf.cast(z2, tf.bfloat16), 0.1)
    assert loss16.dtype == tf.float32
    assert float(loss16) == pytest.approx(float(nt_xent(z1, z2, 0.1)), rel=2e-2)


@pytest.mark.parametrize("bad", [0, -0.5, np.float32(-0.5), np.float64(0.0), True, "0.5"])
def test_rejects_non_positive_temperature(bad):
    z = np.ones((2, 3), "float32")
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, bad)
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=bad)


def test_rejects_wrong_rank_and_mismatched_dims():
    with pytest.raises(ValueError, match="rank-2"):
        nt_xent(np.ones((2, 3, 4), "float32"), np.ones((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match="feature size"):
        nt_xent(np.ones((2, 3), "float32"), np.ones((2, 4), "float32"))


def test_numpy_temperature_and_odd_y_pred():
    z = np.random.default_rng(5).normal(size=(4, 3)).astype("float32")
    assert float(nt_xent(z, z, np.float32(0.5))) == pytest.approx(float(nt_xent(z, z, 0.5)))
    with pytest.raises(ValueError, match=r"even number of rows. Received: shape=\(5, 3\)"):
        NTXentLoss()(None, np.ones((5, 3), "float32"))


def test_loss_class_wraps_function_and_serialises():
    rng = np.random.default_rng(2)
    z1, z2 = rng.normal(size=(2, 4, 5)).astype("float32")
    loss = NTXentLoss(temperature=0.3)
    value = float(loss(None, np.concatenate([z1, z2])))
    assert value == pytest.approx(float(nt_xent(z1, z2, 0.3)), rel=1e-6)
    restored = layer_checks.check_loss_config(loss, None, np.concatenate([z1, z2]))
    assert restored.temperature == 0.3


@pytest.mark.parametrize("total, first", [(8, 4), (9, 5)])  # even shares; an uneven last batch
def test_mirrored_loss_and_gradients_equal_single_device(mirrored_strategy, total, first):
    """Negatives come from the global batch under a 2-replica strategy."""
    rng = np.random.default_rng(3)
    z1 = rng.normal(size=(total, 5)).astype("float32")
    z2 = rng.normal(size=(total, 5)).astype("float32")
    t = 0.5

    def loss_and_grads(a, b):
        a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss, metrics = nt_xent(a, b, t, return_metrics=True)
        return loss, tape.gradient(loss, [a, b]), metrics

    single_loss, (g1, g2), single_metrics = loss_and_grads(z1, z2)

    strategy = mirrored_strategy

    def split(x):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: x[:first] if ctx.replica_id_in_sync_group == 0 else x[first:]
        )

    @tf.function
    def step(a, b):
        return strategy.run(loss_and_grads, args=(a, b))

    per_loss, (per_g1, per_g2), per_metrics = step(split(z1), split(z2))
    local_losses = strategy.experimental_local_results(per_loss)
    # Mean of replica losses (what Keras's distributed step takes) is the
    # global-batch loss, and so for the metrics.
    np.testing.assert_allclose(np.mean(local_losses), float(single_loss), rtol=1e-5)
    for name, value in single_metrics.items():
        np.testing.assert_allclose(np.mean(strategy.experimental_local_results(per_metrics[name])),
                                   float(value), rtol=1e-5, err_msg=name)
    # Gradients flow back through the all-gather: the sum over replicas of
    # each replica's gradient of its own loss, divided by the replica count,
    # equals the single-device gradient of the mean loss.
    g1_dist = np.concatenate(strategy.experimental_local_results(per_g1)) / 2
    g2_dist = np.concatenate(strategy.experimental_local_results(per_g2)) / 2
    np.testing.assert_allclose(g1_dist, g1.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g2_dist, g2.numpy(), rtol=1e-4, atol=1e-6)


def test_without_gather_the_loss_would_differ():
    """Guards the gather: local-only negatives give a different value."""
    rng = np.random.default_rng(4)
    z1, z2 = rng.normal(size=(2, 8, 5)).astype("float32")
    global_loss = float(nt_xent(z1, z2, 0.5))
    local_only = np.mean([float(nt_xent(z1[:4], z2[:4], 0.5)), float(nt_xent(z1[4:], z2[4:], 0.5))])
    assert abs(global_loss - local_only) > 1e-3
