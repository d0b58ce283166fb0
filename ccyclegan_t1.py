"""T1 -- baseline: a conditional U-Net generator with least-squares GAN, cycle and identity losses.

The starting point the other experiments are measured against (the original README's T1):
- G is a U-Net that sees the face and the target emotion as 7 one-hot planes next to it.
- D is multi-task: shared convs, then a real/fake head (a 3x3 patch of scores) and a 7-way emotion
  head of independent sigmoids. As in the original code's D, the emotion head learns real faces'
  emotions *and* "no emotion" (all zeros) for translations; G is pushed to make D read the target
  emotion. Trained on real faces only, the head is fooled within a few hundred steps by
  imperceptible noise that a U-Net draws easily (the translation stays a copy of its input).
- Least-squares adversarial loss (LSGAN) instead of the log-likelihood: steadier gradients when D
  is confident.
- Content is kept by a cycle L1 (x -> target -> back to the source label) and an identity L1
  (G(x | own label) ~ x) weighted 0.1 x lambda_cyc.
- One random other emotion per face per step (T2 uses all six).

Defaults follow the original code's T1 (gtesei/ccyclegan `ccyclegan_t1.py`; see DESIGN.md): the
adversarial term weighs 20 in G's loss (lambda_cyc 1, identity 0.1) and G is half as wide as D (32
vs 64 channels); D and G are both updated on every batch (`--d_g_ratio 1`: the D:G ratio of 5 is
recorded for the T2 line only). With an adversarial weight of 1, T1 collapsed at lambda_cyc = 1
(README, Experiment Log: one template face per emotion). Unlike the original, no test faces are
mixed into the training batches (its `use_test_in_batch=True`): that would make every metric on
the test split meaningless.

    python ccyclegan_t1.py --data datasets/fer2013.csv          # train (see --help)
    python ccyclegan_t1.py --demo                              # minutes on CPU, synthetic faces
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
    base_filters: int = arg(64, "channels of D's first conv (doubling per level)", minimum=1)
    g_base_filters: int = arg(0, "channels of G's first conv (doubling per level); 0: half of "
                                 "base_filters, as in the original T1 (G 32, D 64)", minimum=0)
    g_gan_loss_w: float = arg(20.0, "G: adversarial loss weight")
    id_loss_ratio: float = arg(0.1, "identity L1 weight as a fraction of rec_loss_w")

    # Small networks and the demo recipe's adversarial weight for --demo.
    DEMO = {**train_config.TrainConfig.DEMO, "base_filters": 12, "g_base_filters": 12, "g_gan_loss_w": 1.0}

    @classmethod
    def saved_values(cls, saved):
        return {"g_base_filters": saved.get("base_filters", 0),  # before the flag, G was as wide as D
                **super().saved_values(saved)}


# ## Networks

def build_generator(config):
    """U-Net 48 -> 24 -> 12 -> 6 -> 3 and back, skips at every level; label planes at the input."""
    f = config.g_base_filters or max(1, config.base_filters // 2)
    face = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    target = keras.Input((), dtype="int32", name="target_label")
    x = layers.Concatenate()([face, blocks.LabelMap()(target, face)])
    skips = []
    for level in range(4):
        # As in pix2pix the first level is not normalised: G must see brightness and contrast.
        x = blocks.conv_block(x, f * 2 ** level, norm=level > 0)
        skips.append(x)
    for level in (2, 1, 0):
        x = blocks.conv_block(x, f * 2 ** level, transpose=True, activation="relu")
        x = layers.Concatenate()([x, skips[level]])
    image = blocks.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh")(x)
    return keras.Model([face, target], image, name="generator")


def build_discriminator(config):
    """Multi-task D: shared convs -> (3x3 real/fake scores, 7 emotion logits)."""
    f = config.base_filters
    face = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = blocks.conv_block(face, f, norm=False)
    for level in (1, 2, 3):
        x = blocks.conv_block(x, f * 2 ** level)
    adv = layers.Conv2D(1, 3, padding="same", name="adv")(x)
    cls = layers.Dense(NUM_CLASSES, name="cls")(layers.Flatten()(x))
    return keras.Model(face, [adv, cls], name="d")


def build_networks(config):
    return {"generator": build_generator(config), "d": build_discriminator(config)}


def draw_targets(labels, rng):
    """One random emotion other than the face's own, (N,)."""
    return ((labels + rng.integers(1, NUM_CLASSES, len(labels))) % NUM_CLASSES).astype(np.int32)


def translate(nets, images, target_labels):
    return nets["generator"]([images, target_labels])


def reconstruct(nets, images, labels, config):
    """The cycle: to the next emotion and back to the own one."""
    detour = (labels + 1) % NUM_CLASSES
    return translate(nets, translate(nets, images, detour), labels)


def generate(nets, batch, config):
    """1. translate to the target and to the own label (identity) in one call; 2. cycle back."""
    n = ops.shape(batch.images)[0]
    out = translate(nets, ops.concatenate([batch.images, batch.images], axis=0),
                    ops.concatenate([batch.targets, batch.labels], axis=0))
    fake, identity = out[:n], out[n:]
    return {"fake": fake, "identity": identity, "cycle": translate(nets, fake, batch.labels)}


# ## Losses

def least_squares(scores, is_real):
    return ops.mean(ops.square(scores - (1.0 if is_real else 0.0)))


def l1(a, b):
    return ops.mean(ops.abs(a - b))


def discriminator_loss(nets, batch, generated, config):
    n = ops.shape(batch.images)[0]
    adv, cls = nets["d"](ops.concatenate([batch.images, generated["fake"]], axis=0))
    terms = {"adv": least_squares(adv[:n], True) + least_squares(adv[n:], False),
             "cls": losses.emotion_loss(cls[:n], batch.labels) + losses.emotion_loss(cls[n:])}
    return config.d_gan_loss_w * terms["adv"] + config.d_cl_loss_w * terms["cls"], terms


def generator_loss(nets, batch, generated, config):
    adv, cls = nets["d"](generated["fake"])
    terms = {"adv": least_squares(adv, True),
             "cls": losses.emotion_loss(cls, batch.targets),
             "cyc": l1(generated["cycle"], batch.images),
             "id": l1(generated["identity"], batch.images)}
    total = (config.g_gan_loss_w * terms["adv"] + config.g_cl_loss_w * terms["cls"]
             + config.rec_loss_w * (terms["cyc"] + config.id_loss_ratio * terms["id"]))
    return total, terms


# ## Main

def main(argv=None):
    train_config.train_from_command_line(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
