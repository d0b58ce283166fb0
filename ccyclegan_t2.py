"""T2 -- the paper's final CCycleGAN: encoder/decoder generator with the label at the bottleneck.

What changes against T1 (the baseline) and why:
- G is split into G_enc and G_dec. The target emotion enters only at the 1x1 bottleneck through
  the *transform* (concat -> dense -> LeakyReLU -> 1x1 conv), so one encoding of a face can be
  decoded into every emotion: each step encodes a batch once and decodes it into all 6 other
  emotions (plus its own, for the reconstruction) -- 6x the adversarial signal of T1 per face.
- The adversarial loss is the log-likelihood (binary cross-entropy) objective, not least squares.
- Content is kept by a reconstruction L1 through G_dec(G_enc(x) | own label) instead of a cycle
  through a translation.
- D's emotion head (independent sigmoids, as in the original t26 code) learns real faces'
  emotions and "no emotion" for translations; G is trained to make it read the target emotion.
- Defaults follow the paper: lambda_cl = lambda_cyc = 1, Adam(2e-4, beta=(0.5, 0.999)), batch 64;
  and the original code's schedule (`ccyclegan_t26.py`, see DESIGN.md): D is updated on every
  batch, G on every 5th (`--d_g_ratio 5`), G and D 64 channels wide. Unlike the original, no test
  faces are mixed into the training batches (its `use_test_in_batch=True`): that would make every
  metric on the test split meaningless.

Geometry (4x4 convs, stride 2, valid padding): 48 -> 23 -> 10 -> 4 -> 1, mirrored by the decoder
with skip connections. Two layers are not instance-normalised, unlike the original Keras 2 code:
the 1x1 bottleneck (instance norm on a 1x1 map would erase it) and, as in pix2pix, the first
encoder layer (normalised, it would make G blind to the face's brightness and contrast, so no
reconstruction could match them).

    python ccyclegan_t2.py --data datasets/fer2013.csv          # train (see --help)
    python ccyclegan_t2.py --demo                              # minutes on CPU, synthetic faces
"""
import sys
from dataclasses import dataclass

import numpy as np

import train_config
from data_loader import IMAGE_SIZE, NUM_CLASSES
from lazy_import import lazy_import
from train_config import arg

# Keras, the building blocks and the losses load when a network is built, so --help and flag errors
# answer first (loading Keras takes seconds; see lazy_import.py).
keras, layers, ops = lazy_import("keras"), lazy_import("keras.layers"), lazy_import("keras.ops")
blocks, losses = lazy_import("blocks"), lazy_import("losses")


# ## Config

@dataclass
class Config(train_config.TrainConfig):
    base_filters: int = arg(64, "channels of the first G and D conv (doubling per level)", minimum=1)
    d_g_ratio: int = arg(5, "update D on every step and G on every Nth (steps 0, N, 2N, ...)", minimum=1)

    DEMO = {**train_config.TrainConfig.DEMO, "base_filters": 12}  # small networks for --demo


# ## Networks

def build_generator(config):
    """G_enc: face -> 4 skip tensors; G_dec: skips + target label -> face."""
    f = config.base_filters
    face = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    g_enc = keras.Model(face, encoder(face, f), name="g_enc")
    skips, target = skip_inputs(g_enc), keras.Input((), dtype="int32", name="target_label")
    features = decoder(skips, target, f)  # before the last layer is made: layers draw their seeds when made
    image = blocks.Conv2DTranspose(1, 4, strides=2, padding="valid", activation="tanh")(features)  # 48x48
    g_dec = keras.Model([*skips, target], image, name="g_dec")
    return g_enc, g_dec


def encoder(x, f):
    """48x48 input -> the 4 skip tensors: 23x23, 10x10, 4x4 and the 1x1 bottleneck."""
    z1 = blocks.conv_block(x, f, padding="valid", norm=False)        # 23x23, keeps brightness (see above)
    z2 = blocks.conv_block(z1, 2 * f, padding="valid")               # 10x10
    z3 = blocks.conv_block(z2, 4 * f, padding="valid")               # 4x4
    z4 = blocks.conv_block(z3, 8 * f, padding="valid", norm=False)   # 1x1 bottleneck
    return [z1, z2, z3, z4]


def skip_inputs(g_enc):
    """G_dec's inputs for G_enc's 4 outputs."""
    return [keras.Input(tuple(z.shape[1:]), name=f"z{i + 1}") for i, z in enumerate(g_enc.outputs)]


def decoder(skips, target, f, resize=False):
    """skips + target label -> the 23x23 maps (joined with the first skip) that the last layer turns
    into a 48x48 face. `resize`: upsample by bilinear resizes and convs instead of transposed convs
    (T3's --upsample resize; the first layer, from the 1x1 code, is a dense layer either way)."""
    # The transform: mix the bottleneck code with the requested emotion.
    code = layers.Concatenate()([layers.Flatten()(skips[3]), blocks.OneHot()(target)])
    code = layers.LeakyReLU(0.2)(layers.Dense(8 * f + NUM_CLASSES)(code))
    u = layers.Conv2D(8 * f, 1)(layers.Reshape((1, 1, 8 * f + NUM_CLASSES))(code))
    u = blocks.conv_block(u, 4 * f, transpose=True, padding="valid", activation="relu")   # 4x4
    u = blocks.upsample_block(layers.Concatenate()([u, skips[2]]), 2 * f, skips[1].shape[1], resize=resize,
                              activation="relu")                                   # 10x10
    u = blocks.upsample_block(layers.Concatenate()([u, skips[1]]), f, skips[0].shape[1], resize=resize,
                              activation="relu")                                   # 23x23
    return layers.Concatenate()([u, skips[0]])


def build_discriminator(config, adv_head=None):
    """Multi-task D: shared convs -> (real/fake logit, 7 emotion logits). `adv_head`, if given, makes
    the real/fake output from the 4 x 4 map of the third conv block instead (T3's --d_patch)."""
    f = config.base_filters
    face = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = blocks.conv_block(face, f, padding="valid", norm=False)
    x = blocks.conv_block(x, 2 * f, padding="valid")
    patches = blocks.conv_block(x, 4 * f, padding="valid")
    x = layers.Flatten()(blocks.conv_block(patches, 8 * f, padding="valid", norm=False))
    adv = adv_head(patches) if adv_head else layers.Dense(1, name="adv")(layers.LeakyReLU(0.2)(layers.Dense(8 * f)(x)))
    cls = layers.Dense(NUM_CLASSES, name="cls")(layers.LeakyReLU(0.2)(layers.Dense(8 * f)(x)))
    return keras.Model(face, [adv, cls], name="d")


def build_networks(config):
    g_enc, g_dec = build_generator(config)
    return {"g_enc": g_enc, "g_dec": g_dec, "d": build_discriminator(config)}


def draw_targets(labels, rng):
    """All 6 other emotions of every face, (N, 6); no randomness needed."""
    return ((labels[:, None] + np.arange(1, NUM_CLASSES)) % NUM_CLASSES).astype(np.int32)


def translate(nets, images, target_labels):
    return nets["g_dec"]([*nets["g_enc"](images), target_labels])


def reconstruct(nets, images, labels, config):
    """T2's reconstruction: the face decoded with its own label."""
    return translate(nets, images, labels)


def fake_targets(targets):
    """The 6N target labels of the translations of (N, 6) `targets`, target-major (all faces to
    target 1, ...)."""
    return ops.reshape(ops.transpose(targets), (-1,))


def generate(nets, batch, config):
    """1. encode once; 2. decode into the own label and the 6 others in one decoder call."""
    skips = nets["g_enc"](batch.images)
    labels = ops.concatenate([batch.labels, fake_targets(batch.targets)], axis=0)
    decoded = nets["g_dec"]([ops.tile(z, (NUM_CLASSES, 1, 1, 1)) for z in skips] + [labels])
    n = ops.shape(batch.images)[0]
    return {"rec": decoded[:n], "fakes": decoded[n:]}


# ## Losses

def discriminator_loss(nets, batch, generated, config):
    n = ops.shape(batch.images)[0]
    adv, cls = nets["d"](ops.concatenate([batch.images, generated["fakes"]], axis=0))
    terms = {"adv": losses.bce(adv[:n], True) + losses.bce(adv[n:], False),
             "cls": losses.emotion_loss(cls[:n], batch.labels) + losses.emotion_loss(cls[n:])}
    return config.d_gan_loss_w * terms["adv"] + config.d_cl_loss_w * terms["cls"], terms


def generator_loss(nets, batch, generated, config):
    adv, cls = nets["d"](generated["fakes"])
    terms = {"adv": losses.bce(adv, True),
             "cls": losses.emotion_loss(cls, fake_targets(batch.targets)),
             "rec": ops.mean(ops.abs(generated["rec"] - batch.images))}
    total = (config.g_gan_loss_w * terms["adv"] + config.g_cl_loss_w * terms["cls"]
             + config.rec_loss_w * terms["rec"])
    return total, terms


# ## Main

def main(argv=None):
    train_config.train_from_command_line(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
