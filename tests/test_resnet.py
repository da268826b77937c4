import keras
import numpy as np
import pytest

from simclr_tf.resnet import resnet
from tests import layer_checks
from tests.layer_checks import LayerCase

IMAGES = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
# Tiny encoders; BN in training mode (batch statistics) and in inference mode.
LAYER_CASES = [
    LayerCase("resnet10-basic", lambda: resnet(10, None, (8, 8, 3), small_images=True, stage_widths=(4, 4, 4, 4)),
              IMAGES, {"training": False}),
    LayerCase("resnet14-bottleneck", lambda: resnet(14, None, (8, 8, 3), small_images=True,
                                                    stage_widths=(2, 2, 2, 2)), IMAGES, {"training": True}),
]


@layer_checks.parametrize(LAYER_CASES)
def test_layer_checks(case, check, tmp_path):
    layer_checks.run_check(case, check, tmp_path)



@pytest.mark.parametrize(
    "depth, features",
    [(10, 64), (14, 256), (18, 64), (34, 64), pytest.param(50, 256, marks=pytest.mark.slow),
     pytest.param(101, 256, marks=pytest.mark.slow),
     pytest.param(152, 256, marks=pytest.mark.slow)],
)
def test_output_width_per_depth(depth, features):
    encoder = resnet(depth, width_multiplier=0.125, input_shape=(16, 16, 3), small_images=True)
    assert encoder.output_shape == (None, features)
    out = encoder(np.zeros((2, 16, 16, 3), "float32"))
    assert tuple(out.shape) == (2, features)


def test_full_width_resnet50_has_the_published_parameter_count():
    encoder = resnet(50, input_shape=(224, 224, 3))
    # torchvision's ResNet-50 has 25,557,032 parameters; without its
    # 2048x1000 classifier that is 23,508,032 trainable ones.
    trainable = sum(int(np.prod(w.shape)) for w in encoder.trainable_weights)
    assert trainable == 23_508_032
    assert encoder.output_shape == (None, 2048)


def test_depth_10_has_one_basic_block_per_stage():
    encoder = resnet(10, 0.125, (16, 16, 3), small_images=True)
    blocks = {"_".join(l.name.split("_")[:2]) for l in encoder.layers if l.name.startswith("stage")}
    assert sorted(blocks) == [f"stage{s}_block1" for s in range(1, 5)]
    assert encoder.count_params() < resnet(18, 0.125, (16, 16, 3), small_images=True).count_params()


def test_depth_14_has_one_bottleneck_block_per_stage():
    encoder = resnet(14, 0.125, (16, 16, 3), small_images=True)
    names = [l.name for l in encoder.layers]
    blocks = {"_".join(n.split("_")[:2]) for n in names if n.startswith("stage")}
    assert sorted(blocks) == [f"stage{s}_block1" for s in range(1, 5)]
    # Bottleneck: three convolutions per block, the last 4x the block's width.
    assert all(f"stage{s}_block1_conv3" in names for s in range(1, 5))
    assert encoder.get_layer("stage4_block1_conv3").kernel.shape[-1] == 4 * 64
    # The name counts 13 convolutions on the main path (stem + 4 x 3) and
    # the classifier a ResNet would end with; the shortcuts are not counted.
    convs = [n for n in names if n.endswith(("conv", "conv1", "conv2", "conv3")) and "proj" not in n]
    assert len(convs) == 13


@pytest.mark.parametrize("depth, expansion", [(10, 1), (14, 4), (18, 1), (50, 4)])
def test_stage_widths_set_each_stage_and_h(depth, expansion):
    widths = (8, 12, 16, 40)
    enc = resnet(depth, 0.125, (16, 16, 3), small_images=True, stage_widths=widths)
    assert enc.get_layer("stem_conv").kernel.shape[-1] == 8
    for stage, width in enumerate(widths, start=1):
        assert enc.get_layer(f"stage{stage}_block1_conv1").kernel.shape[-1] == width
        assert enc.get_layer(f"stage{stage}_block1_add").output.shape[-1] == width * expansion
    assert enc.output_shape == (None, 40 * expansion)
    assert tuple(enc(np.zeros((2, 16, 16, 3), "float32")).shape) == (2, 40 * expansion)
    # NumPy integers are integers too.
    assert resnet(depth, 1, (16, 16, 3), small_images=True,
                  stage_widths=[np.int64(w) for w in widths]).output_shape == (None, 40 * expansion)
    # With stage_widths the multiplier may be None; without, it may not.
    assert resnet(depth, None, (16, 16, 3), small_images=True,
                  stage_widths=widths).output_shape == (None, 40 * expansion)
    with pytest.raises(ValueError, match="width_multiplier=None"):
        resnet(depth, None, (16, 16, 3), small_images=True)
    # Without stage_widths the multiplier decides, as before.
    assert resnet(depth, 0.125, (16, 16, 3), small_images=True).output_shape == (None, 64 * expansion)


def test_small_image_stem_keeps_resolution_and_imagenet_stem_quarters_it():
    small = resnet(18, 0.125, (32, 32, 3), small_images=True)
    large = resnet(18, 0.125, (32, 32, 3), small_images=False)
    assert small.get_layer("stage1_block1_conv1").input.shape[1] == 32
    assert large.get_layer("stage1_block1_conv1").input.shape[1] == 8
    assert small.get_layer("stem_conv").kernel.shape[:2] == (3, 3)
    assert large.get_layer("stem_conv").kernel.shape[:2] == (7, 7)
    assert not any(isinstance(l, keras.layers.MaxPooling2D) for l in small.layers)


def test_stem_stride_two_halves_the_first_stage():
    enc = resnet(18, 0.125, (28, 28, 3), small_images=True, stem_stride=2)
    assert enc.get_layer("stage1_block1_conv1").input.shape[1] == 14
    with pytest.raises(ValueError, match="stem_stride"):
        resnet(18, 0.125, (28, 28, 3), small_images=True, stem_stride=3)


def test_stem_pool_halves_the_first_stage_after_a_full_resolution_stem():
    enc = resnet(10, None, (28, 28, 3), small_images=True, stem_pool=True,
                 stage_widths=(8, 8, 8, 8))
    assert enc.get_layer("stem_conv").output.shape[1] == 28
    assert enc.get_layer("stem_conv").strides == (1, 1)
    assert enc.get_layer("stage1_block1_conv1").input.shape[1] == 14
    # The pool keeps the largest stem response of every overlapping window,
    # so no stem output is skipped: the pooled maximum is the stem's maximum
    # (a bright pixel at an odd position, where a stride-2 stem never
    # centres its kernel).
    pooled = keras.Model(enc.input, enc.get_layer("stem_pool").output)
    relu = keras.Model(enc.input, enc.get_layer("stem_relu").output)
    x = np.zeros((1, 28, 28, 3), "float32")
    x[0, 13, 13] = 1.0
    np.testing.assert_allclose(np.max(pooled(x)), np.max(relu(x)), rtol=1e-6)
    assert enc.count_params() == resnet(10, None, (28, 28, 3), small_images=True, stem_stride=2,
                                        stage_widths=(8, 8, 8, 8)).count_params()


@pytest.mark.parametrize("kwargs, received", [
    ({"small_images": True, "stem_stride": 2}, "stem_stride=2"),
    ({"small_images": False}, "small_images=False"),
    ({"small_images": True, "stem_pool_value": "yes"}, "stem_pool='yes'"),
])
def test_stem_pool_refuses_what_it_cannot_do(kwargs, received):
    kwargs = dict(kwargs)
    pool = kwargs.pop("stem_pool_value", True)
    with pytest.raises(ValueError, match="stem_pool") as err:
        resnet(10, 0.125, (28, 28, 3), stem_pool=pool, **kwargs)
    assert received in str(err.value)


def test_plain_init_switch_keeps_gamma_at_one():
    enc = resnet(18, 0.125, (8, 8, 3), small_images=True, zero_init_residual=False)
    assert all(np.all(l.gamma.numpy() == 1) for l in enc.layers if l.name.endswith("_bn2"))


def test_last_bn_of_each_block_starts_at_zero_gamma():
    encoder = resnet(50, 0.125, (16, 16, 3), small_images=True)
    last_bns = [l for l in encoder.layers if l.name.endswith("_bn3")]
    assert len(last_bns) == 16
    for bn in last_bns:
        assert np.all(bn.gamma.numpy() == 0)
    assert np.all(encoder.get_layer("stage1_block1_bn1").gamma.numpy() == 1)


def test_zero_gamma_makes_each_block_start_as_identity_plus_shortcut():
    encoder = resnet(18, 0.125, (8, 8, 3), small_images=True)
    block_in = encoder.get_layer("stage1_block2_conv1").input
    block_out = encoder.get_layer("stage1_block2_out").output
    probe = keras.Model(encoder.input, [block_in, block_out])
    x_in, x_out = probe(np.random.rand(2, 8, 8, 3).astype("float32"), training=False)
    # relu(0 + x) == x because x is itself a ReLU output.
    np.testing.assert_allclose(x_out, x_in, atol=1e-6)


def test_sync_batch_norm_switch():
    encoder = resnet(18, 0.125, (8, 8, 3), small_images=True, sync_batch_norm=True)
    bns = [l for l in encoder.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(l.synchronized for l in bns)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(depth=20), "depth"),
        (dict(depth=18, width_multiplier=0), "width_multiplier"),
        (dict(depth=18, width_multiplier=-1), "width_multiplier"),
        (dict(depth=18, input_shape=(8, 8, 4)), "input_shape"),
        (dict(depth=18, input_shape=(8, 8)), "input_shape"),
        (dict(depth=18, stage_widths=(16, 32, 64)), "stage_widths"),
        (dict(depth=18, stage_widths=(16, 32, 64, 0)), "stage_widths"),
        (dict(depth=18, stage_widths=(16, 32, 64, 12.5)), "stage_widths"),
        (dict(depth=18, stage_widths=(16, 32, 64, True)), "stage_widths"),
        (dict(depth=18, stage_widths=256), "stage_widths"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resnet(**kwargs)
