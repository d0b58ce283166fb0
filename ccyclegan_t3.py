"""T3 -- our method, beyond the paper: T2 with StarGAN's cycle and classifier, an attention mask, DiffAugment.

What changes against T2 (ccyclegan_t2.py) and why; each change is a flag, so that every ablation
runs at the same budget:
- The cycle goes through a translation (StarGAN, Choi et al. 2018, `--cycle translation`): every
  translation G(x | t) is translated back to the face's own emotion and compared with x by L1.
  T2's reconstruction G_dec(G_enc(x) | own label) never passes through a translation, so nothing
  asks a translation to keep what is needed to undo it -- the face's identity. `--cycle own_label`
  is T2's.
- D's emotion head is a 7-way softmax trained on real faces only (StarGAN, `--emotion_head
  softmax`); G is trained to make it read the target emotion on its translations. T2's head of
  independent sigmoids also learns "no emotion" for translations, a second real/fake judgement
  beside the adversarial head, so it learns what marks a fake rather than what marks an emotion.
  T1 recorded the risk of a head trained on real faces only: imperceptible noise can fool it, and
  the translation stays a copy of its input. Watch for it (expression accuracy by the separate
  judge, not D's own head); `--emotion_head sigmoid` is T2's head.
- R1 gradient penalty on real faces (Mescheder et al. 2018, `--r1_gamma`): D's loss adds
  gamma/2 * E ||grad_x D_adv(x)||^2. Mescheder et al. show that GAN training without such a
  penalty need not converge even locally, and that with it it does, with alternating 1:1 updates
  too. gamma 1 is StarGAN v2's for face translation with this loss; StyleGAN2-ADA's heuristic
  (0.0002 * resolution^2 / batch) would give 0.007 at 48x48 and batch 64, and Mescheder et al.
  used 10 on larger images. The gradient with respect to D's input is taken inside D's loss
  (autodiff.value_and_input_grad), so D's own gradient is of second order. Off by default
  (`--r1_gamma 0`): on FER2013 every run with gamma 1 drew noise in every translation column from
  the first grids on, and without it the faces stayed clean (Experiment Log); the noise left
  without it, G fooling D's emotion head when pushed harder, is what DiffAugment below stops.
- Attention (GANimation, Pumarola et al. 2018, `--attention`): G_dec ends in two heads, a colour
  image C (tanh) and a mask A (sigmoid), and G's face is A * x + (1 - A) * C. Where A is 1 the input
  passes untouched, so G redraws only what an expression moves (mouth, brows, eyes) and keeps the
  rest of the face exactly instead of redrawing it through the 1x1 bottleneck. GANimation's
  regulariser `--lambda_mask` adds the mean of A over every pass of G: the mask tends to saturate at
  1, where G does nothing (the cycle and adversarial losses are then met; only the classification
  loss objects), and the penalty keeps G changing the face. `--lambda_mask_tv` adds the total
  variation of A (GANimation's smoothness term). Off by default: the strokes in T3's grids are thin
  curves of the mask, but on the shipped run weight 4 cut the mask's variation by about 40 % in
  1,792 steps, kept most strokes and took expression below the targets (Experiment Log).
  `--mask_resolution N` averages the mask down to N x N and resizes it back (bilinear), so that it
  cannot draw a curve thinner than 48/N pixels; it adds no weights, so a run branches into it. 48
  (off) by default: branched into the shipped run at 24, G drew the same curves 2 pixels wide and
  blurred, and expression and reconstruction fell below the targets in 1,792 steps (Experiment Log).
- `--diff_augment` (DiffAugment, Zhao et al. 2020; on by default): D sees every face, real or G's,
  moved by up to 6 pixels (zeros come in; DiffAugment's translation 1/8), drawn per face and step on
  the host; G's losses read D through the same augmentation, so G learns through it. Why: with R1
  off, G pushed by D's emotion head draws fine noise that the head reads as the target emotion and
  the separate judge does not (see the Experiment Log); a head that must recognise emotions at
  every sub-pixel phase of its strided convs is harder to fool with a pattern fixed to the pixel
  grid. `--cutout N` also blanks an N x N square (DiffAugment's cutout 1/2 is 24); off by default:
  at 896 steps shifts alone translated more (mean relative accuracy 0.519 against 0.439, minimum
  0.075 against 0.068, KID 4.46 against 5.03) at about the same reconstruction (0.148 against
  0.141), and with the square and `--g_cl_loss_w 3` G drew one template face per emotion.
- `--upsample resize` (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts"): G_dec grows
  its maps by a bilinear resize and a 3x3 conv instead of T2's 4x4 stride-2 transposed convs. A
  transposed conv makes even and odd output pixels from different kernel taps, and the grids of
  the DiffAugment runs show the period-2 dots this draws; after a resize every output pixel is made
  the same way. The default: at 896 steps the judge read fewer of its translations as the target
  (mean relative accuracy 0.291 against 0.560, balanced epochs), but only its grids were clean
  (with transposed convs dots and blocks covered every face), and trained on it became the
  Experiment Log's best on expression and KID (mean / minimum 0.666 / 0.390 at 1,792 steps,
  1.138 / 0.881 and KID 0.61 at 8,064; the transposed-conv runs stopped at 896).
  `--upsample transpose` is T2's.
- `--label_planes` (StarGAN) also gives G_enc the target emotion as 7 one-hot planes beside the
  face. Off by default: the label already joins at the bottleneck through T2's transform, which we
  keep, and without planes one encoding of a face serves all six targets.
- `--balanced` (T2: off): every emotion gets the same share of an epoch (a class's faces are
  cycled). Disgust is 1.5 % of FER2013's Training faces, so D's emotion head hardly learns it and
  cannot teach G to draw it: at 896 steps (with resize upsampling, DiffAugment's shifts, no R1)
  balanced epochs raised Disgust's relative accuracy from 0.03 to 0.22 and the minimum over the
  seven emotions from 0.03 to 0.21, the mean staying level (0.291 against 0.297; one seed).
- `--d_g_ratio 1` (T2: 5): 5:1 is the schedule WGAN critics need (WGAN-GP, StarGAN); with R1, D
  and G are updated alternately 1:1 (Mescheder et al., StarGAN v2), so every step also trains G.
  Switched to 2:1 late in training (at 17,024 steps), D's loss hardly moved and the strokes stayed
  (Experiment Log).
- `--emotion_blur SIGMA` (ours; off by default): D's emotion head, in D's loss on real faces and
  in G's classification term, reads every face blurred by a Gaussian of SIGMA pixels, while the
  real/fake head reads it sharp (a second pass of D). Why: G draws its expressions as thin strokes,
  and a one-pixel line keeps under a third of its height through a blur of 1.5, so the head would
  have to be taught by a changed mouth or brow rather than by a line drawn on the face. Off: from
  scratch at 1.5, G drew blurred patches where the recipe drew strokes and learnt expression at
  about half the recipe's pace (at 1,792 steps mean relative accuracy 0.29 against 0.67, KID 5.04
  against 2.91), at about the same cost per step (Experiment Log; bench/bench_t3.py).
- `--d_patch` (PatchGAN, Isola et al. 2017; off by default): D's real/fake head becomes 1x1 convs on
  its third conv block's 4 x 4 map, one logit per 22 x 22 patch (the receptive field of its convs),
  averaged in the loss, instead of dense layers giving one logit per face; the emotion head is T2's.
  Why: the strokes are local, and one logit per face may average a local artefact away. Off: with G
  held at the shipped generator for 1,344 D-only steps neither head's real/fake loss left chance
  (1.386) through DiffAugment's shifts (see --augment_heads); trained on from there
  (`--init_generator`, 448 G steps) G drew one crude template per emotion (FID 41.3 against 21.7
  with T2's head; Experiment Log).
- `--augment_heads emotion` (ours; `both` by default): only D's emotion head reads DiffAugment's
  shifted faces; its real/fake head reads every face as it is, in a second pass of D. Why: a fresh D
  trained on real faces against the shipped generator's translations tells them apart on held-out
  faces when it sees them as they are (ROC AUC 0.74 after 100 steps, 0.84 after 600), and not at
  all through the shifts (0.51 after 600; `probe_discriminator.py`), so with `both` the real/fake
  head hardly guides G; the shifts are wanted against G fooling the emotion head. Off: from
  scratch, with the recipe's other flags and seed, G learnt expression at half the recipe's pace
  (mean relative accuracy 0.517 against 1.041 at 3,584 steps, KID 2.86 against 1.36), changed the
  faces less and still drew thin strokes; started from the shipped generator with a fresh D, G
  answered the sharp head by changing less and drew crude templates (Experiment Log).
Unchanged from T2: G_enc/G_dec with the transform at the bottleneck, D's networks (but
`--d_patch`), the BCE adversarial loss, all six other emotions per face per step, lambda_cl =
lambda_cyc = 1 (the shipped generator was trained on with the cycle weight 3, `rec_loss_w`, after
7,168 steps, which cut its reconstruction L1 from 0.14 to under 0.08: Experiment Log), G's moving
average (`--ema_decay 0.999`), 64 channels (on a 2-core CPU 32 gave more per CPU-hour: Experiment
Log). With every default on, a training step costs about 3.8x T2's on a 2-core CPU
(bench/bench_t3.py): half of it is the resize upsampling, most of the rest the cycle (each
translation is encoded and decoded again); R1, where switched on, adds a second-order backward pass
through D on the real faces.

    python ccyclegan_t3.py --data datasets/fer2013.csv          # train (see --help)
    python ccyclegan_t3.py --demo                              # minutes on CPU, synthetic faces
    python ccyclegan_t3.py --cycle own_label --no-attention    # an ablation: flags switch each change
"""
import sys
from dataclasses import dataclass

import numpy as np

import ccyclegan_t2 as t2
import train_config
from data_loader import IMAGE_SIZE, NUM_CLASSES
from lazy_import import lazy_import
from train_config import arg

# Keras and the modules that load it come when a network is built, so --help and flag errors answer
# first (loading Keras takes seconds; see lazy_import.py).
keras, layers, ops = lazy_import("keras"), lazy_import("keras.layers"), lazy_import("keras.ops")
autodiff, blocks, losses = lazy_import("autodiff"), lazy_import("blocks"), lazy_import("losses")


# ## Config

@dataclass
class Config(t2.Config):
    d_g_ratio: int = arg(1, "update D on every step and G on every Nth (steps 0, N, 2N, ...)", minimum=1)
    balanced: bool = arg(True, "class-balanced epochs (Disgust is 1.5%% of FER2013)")
    cycle: str = arg("translation", "translation: x -> G(x|t) -> back to the own emotion, L1 vs x (StarGAN); "
                                    "own_label: G(x|own emotion) vs x (T2)", choices=("translation", "own_label"))
    emotion_head: str = arg("softmax", "softmax: D's 7-way emotion head learns real faces only (StarGAN); "
                                       "sigmoid: independent sigmoids, 'no emotion' for translations (T2)",
                            choices=("softmax", "sigmoid"))
    r1_gamma: float = arg(0.0, "D: R1 penalty gamma/2 * E|grad_x D_adv(x)|^2 on real faces (0: off)", minimum=0)
    attention: bool = arg(True, "G's face = A * x + (1 - A) * colour, with a mask A (GANimation)")
    lambda_mask: float = arg(0.1, "G: weight of the mean attention mask (keeps it from saturating at "
                                  "'change nothing')", minimum=0)
    lambda_mask_tv: float = arg(0.0, "G: weight of the attention mask's total variation", minimum=0)
    mask_resolution: int = arg(IMAGE_SIZE, "the attention mask is averaged down to this size and resized "
                                           "back (bilinear): no curve thinner than 48 / this many pixels",
                               choices=(IMAGE_SIZE, IMAGE_SIZE // 2, IMAGE_SIZE // 3, IMAGE_SIZE // 4))
    label_planes: bool = arg(False, "G_enc also sees the target emotion as 7 one-hot planes (StarGAN)")
    upsample: str = arg("resize", "G_dec's upsampling: resize (bilinear resize, then a 3x3 conv: no "
                                  "checkerboard) or transpose (T2's 4x4 stride-2 transposed convs)",
                        choices=("transpose", "resize"))
    diff_augment: bool = arg(True, "D sees every face shifted by up to 6 pixels (and with a square blanked: "
                                   "--cutout), drawn per face; G learns through it (DiffAugment)")
    cutout: int = arg(0, "with --diff_augment: the side of the blanked square in pixels (0: shifts only)",
                      minimum=0, below=IMAGE_SIZE + 1)
    augment_heads: str = arg("both", "with --diff_augment: which of D's heads read the shifted faces; emotion: "
                                     "the real/fake head reads them as they are (a second pass of D)",
                             choices=("both", "emotion"))
    emotion_blur: float = arg(0.0, "D's emotion head (and so G's classification term) reads every face "
                                   "blurred by a Gaussian of this sigma in pixels; its real/fake head reads "
                                   "it sharp (0: off)", minimum=0)
    d_patch: bool = arg(False, "D's real/fake output is a 4 x 4 map of logits, each judging a 22 x 22 "
                               "patch (PatchGAN), instead of one logit for the whole face")
    # T3 runs written before these flags existed (their config.json lacks them) trained with these values.
    PREDATED = {**t2.Config.PREDATED, "upsample": "transpose", "diff_augment": False, "cutout": 24}

    def check(self):
        super().check()
        # Both shape the attention mask; without one they would be accepted and do nothing.
        if not self.attention and (self.mask_resolution != IMAGE_SIZE or self.lambda_mask_tv):
            raise train_config.ConfigError("--mask_resolution and --lambda_mask_tv shape the attention mask; "
                                           "drop them with --no-attention")
        # A new run only: runs older than --diff_augment resume with its PREDATED cutout 24, unused.
        if not self.diff_augment and self.cutout and not self.resume:
            raise train_config.ConfigError("--cutout blanks a square of the faces DiffAugment moves; "
                                           "drop it with --no-diff_augment")
        if not self.diff_augment and self.augment_heads != "both":
            raise train_config.ConfigError("--augment_heads chooses which of D's heads read DiffAugment's faces; "
                                           "drop it with --no-diff_augment")


# ## Networks

def build_generator(config):
    """T2's G_enc / G_dec. With --label_planes G_enc sees [face, target label]; with --attention
    G_dec outputs [colour, mask] instead of the face (`decode` composes them)."""
    f = config.base_filters
    face = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    target = keras.Input((), dtype="int32", name="target_label")
    if config.label_planes:
        planes = layers.Concatenate()([face, blocks.LabelMap()(target, face)])
        g_enc = keras.Model([face, target], t2.encoder(planes, f), name="g_enc")
    else:
        g_enc = keras.Model(face, t2.encoder(face, f), name="g_enc")
    skips = t2.skip_inputs(g_enc)
    resize = config.upsample == "resize"
    features = t2.decoder(skips, target, f, resize=resize)
    if resize:  # resized once for both heads
        features = layers.Resizing(IMAGE_SIZE + 2, IMAGE_SIZE + 2, interpolation="bilinear")(features)

    def to_48x48(activation, name):
        if resize:
            return blocks.Conv2D(1, 3, padding="valid", activation=activation, name=name)(features)
        return blocks.Conv2DTranspose(1, 4, strides=2, padding="valid", activation=activation,
                                      name=name)(features)
    if config.attention:
        outputs = [to_48x48("tanh", "colour"), to_48x48("sigmoid", "mask")]
    else:
        outputs = to_48x48("tanh", None)
    coarse_mask = config.attention and config.mask_resolution != IMAGE_SIZE
    g_dec = keras.Model([*skips, target], outputs, name="g_dec_full_mask" if coarse_mask else "g_dec")
    if coarse_mask:
        g_dec = with_coarse_mask(g_dec, config.mask_resolution)
    return g_enc, g_dec


def with_coarse_mask(g_dec, resolution):
    """g_dec whose mask is averaged down to resolution x resolution and resized back (bilinear). It
    wraps g_dec rather than rebuilding it: the same weights in the same order, so a run branches
    into it from a 48x48 checkpoint."""
    inputs = [keras.Input(x.shape[1:], dtype=x.dtype, name=x.name) for x in g_dec.inputs]
    colour, mask = g_dec(inputs)
    mask = layers.AveragePooling2D(IMAGE_SIZE // resolution)(mask)
    mask = layers.Resizing(IMAGE_SIZE, IMAGE_SIZE, interpolation="bilinear", name="mask")(mask)
    return keras.Model(inputs, [colour, mask], name="g_dec")


def build_discriminator(config):
    """T2's D; with --d_patch its real/fake head is PatchGAN's (Isola et al. 2017): 1x1 convs on the
    third conv block's 4 x 4 map, one logit per 22 x 22 patch (stride 8)."""
    if not config.d_patch:
        return t2.build_discriminator(config)

    def patch_head(patches):
        hidden = layers.LeakyReLU(0.2)(blocks.Conv2D(8 * config.base_filters, 1)(patches))
        return blocks.Conv2D(1, 1, name="adv")(hidden)
    return t2.build_discriminator(config, patch_head)


def build_networks(config):
    g_enc, g_dec = build_generator(config)
    return {"g_enc": g_enc, "g_dec": g_dec, "d": build_discriminator(config)}


SHIFT = IMAGE_SIZE // 8  # DiffAugment's translation ratio, 1/8 (its cutout ratio 1/2 is --cutout's 24)


def draw_targets(labels, rng):
    """T2's targets, all 6 other emotions of every face (N, 6), and what --diff_augment does to each
    face and each of its 6 translations (N, 7, 4): a shift (dy, dx) and the centre (cy, cx) of the
    blanked square. Drawn on every step, used or not, so the stream is the same with and without."""
    n = len(labels)
    augment = np.concatenate([rng.integers(-SHIFT, SHIFT + 1, (n, NUM_CLASSES, 2)),
                              rng.integers(0, IMAGE_SIZE, (n, NUM_CLASSES, 2))], axis=-1)
    return {"emotions": t2.draw_targets(labels, rng), "augment": augment.astype(np.int32)}


def fake_targets(batch):
    """The 6N target emotions of the translations, target-major (T2's order)."""
    return t2.fake_targets(batch.targets["emotions"])


def sees_label(nets):
    """Whether G_enc takes the target label (--label_planes); the saved networks tell."""
    return len(nets["g_enc"].inputs) == 2


def encode(nets, faces, labels):
    return nets["g_enc"]([faces, labels] if sees_label(nets) else faces)


def attend(faces, colour, mask):
    """GANimation's composition: the input face where the mask is 1, G's colour where it is 0."""
    return mask * faces + (1.0 - mask) * colour


def decode(nets, skips, faces, labels):
    """G_dec's faces for `labels` and their attention masks (None without --attention)."""
    if len(nets["g_dec"].outputs) == 1:
        return nets["g_dec"]([*skips, labels]), None
    colour, mask = nets["g_dec"]([*skips, labels])
    return attend(faces, colour, mask), mask


def translate_copies(nets, images, labels, copies):
    """`images` repeated `copies` times, translated to `labels` ((copies * N,), copy-major): the
    faces and masks. Without label planes each face is encoded once for all its copies."""
    faces = ops.tile(images, (copies, 1, 1, 1))
    if sees_label(nets):
        skips = encode(nets, faces, labels)
    else:
        skips = [ops.tile(z, (copies, 1, 1, 1)) for z in encode(nets, images, labels)]
    return decode(nets, skips, faces, labels)


def translate(nets, images, target_labels):
    return decode(nets, encode(nets, images, target_labels), images, target_labels)[0]


def attention_masks(nets, images, target_labels):
    """The masks A of translate's faces (figures.py --masks); None without --attention."""
    return decode(nets, encode(nets, images, target_labels), images, target_labels)[1]


def reconstruct(nets, images, labels, config):
    """The cycle the run trained: to the next emotion and back (--cycle translation), or the face
    decoded with its own label (own_label)."""
    if config.cycle == "translation":
        images = translate(nets, images, (labels + 1) % NUM_CLASSES)
    return translate(nets, images, labels)


def generate(nets, batch, config):
    """1. translate every face into its 6 other emotions; 2. reconstruct: every translation back to
    the face's own emotion (StarGAN's cycle), or the face decoded with its own label (T2's)."""
    others = NUM_CLASSES - 1
    if config.cycle == "translation":
        fakes, fake_masks = translate_copies(nets, batch.images, fake_targets(batch), others)
        own = ops.tile(batch.labels, (others,))
        rec, rec_masks = decode(nets, encode(nets, fakes, own), fakes, own)
        generated = {"fakes": fakes, "rec": rec}
        masks = [fake_masks, rec_masks]
    else:
        n = ops.shape(batch.images)[0]
        out, out_masks = translate_copies(nets, batch.images,
                                          ops.concatenate([batch.labels, fake_targets(batch)], axis=0), others + 1)
        generated = {"fakes": out[n:], "rec": out[:n]}
        masks = [out_masks]
    if config.attention:
        generated["masks"] = ops.concatenate(masks, axis=0)
    return generated


# ## Losses

CYCLE_TERM = {"translation": "cyc", "own_label": "rec"}  # the names T1 and T2 log these terms under


def emotion_loss(logits, labels, config):
    """D's emotion head read against `labels`: 7-way softmax cross-entropy, or T2's sigmoids."""
    if config.emotion_head == "softmax":
        return ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    return losses.emotion_loss(logits, labels)


def diff_augment(faces, params, cutout):
    """Faces (M, 48, 48, 1) moved by (dy, dx) pixels, zeros coming in, and blanked (0) on the
    cutout x cutout square around (cy, cx), by the rows of `params` (M, 4). Written as products
    with 0/1 matrices, so that G's gradient passes through on every backend."""
    pixels = ops.arange(IMAGE_SIZE, dtype="int32")
    dy, dx, cy, cx = (params[:, i, None] for i in range(4))

    def shift(offsets):  # (M, 48, 48): row i picks row i - offset of what it multiplies
        return ops.cast(ops.equal(pixels[None, None, :], pixels[None, :, None] - offsets[:, :, None]), faces.dtype)

    def outside(centres):  # (M, 48): whether each row (column) lies outside the square
        return ops.logical_or(pixels[None, :] < centres - cutout // 2, pixels[None, :] >= centres + (cutout + 1) // 2)
    moved = ops.matmul(ops.matmul(shift(dy), faces[..., 0]), ops.transpose(shift(dx), (0, 2, 1)))
    kept = ops.logical_or(outside(cy)[:, :, None], outside(cx)[:, None, :])
    return (moved * ops.cast(kept, faces.dtype))[..., None]


def seen_by_d(batch, config):
    """What D looks at: functions of the real faces and of the 6N translations (target-major)."""
    if not config.diff_augment:
        return (lambda faces: faces), (lambda faces: faces)
    augment = batch.targets["augment"]
    fakes = ops.reshape(ops.transpose(augment[:, 1:], (1, 0, 2)), (-1, 4))
    return (lambda faces: diff_augment(faces, augment[:, 0], config.cutout),
            lambda faces: diff_augment(faces, fakes, config.cutout))


def gaussian_blur(faces, sigma):
    """Faces (M, 48, 48, 1) convolved with a Gaussian of `sigma` pixels (truncated at 2 sigma, zeros
    padded in: the same for real faces and G's). Written as products with a banded matrix (it is
    symmetric), like diff_augment's shifts: on the CPU far cheaper than a 1-channel ops.conv."""
    def gaussian(offsets):
        return np.exp(-offsets ** 2 / (2 * sigma ** 2))
    radius = int(np.ceil(2 * sigma))
    offsets = np.arange(IMAGE_SIZE)[None, :] - np.arange(IMAGE_SIZE)[:, None]
    band = np.where(np.abs(offsets) <= radius, gaussian(offsets), 0) / gaussian(np.arange(-radius, radius + 1)).sum()
    band = ops.cast(band, faces.dtype)
    return ops.matmul(ops.matmul(band, faces[..., 0]), band)[..., None]


def d_reads(nets, faces, view, config, emotions=True):
    """D's real/fake and emotion logits of `faces` seen through `view` (seen_by_d's). With
    --augment_heads emotion the real/fake logits are of the faces as they are, and with
    --emotion_blur the emotion logits are of the seen faces blurred, each read by a pass of D of its
    own (none where `emotions` is False: the emotion logits are then not used)."""
    sharp_adv = config.diff_augment and config.augment_heads == "emotion"
    seen = faces if sharp_adv and not emotions else view(faces)
    adv, cls = nets["d"](seen)
    if sharp_adv and emotions:
        adv = nets["d"](faces)[0]
    if config.emotion_blur and emotions:
        cls = nets["d"](gaussian_blur(seen, config.emotion_blur))[1]
    return adv, cls


def total_variation(masks):
    return (ops.mean(ops.abs(masks[:, 1:] - masks[:, :-1]))
            + ops.mean(ops.abs(masks[:, :, 1:] - masks[:, :, :-1])))


def discriminator_loss(nets, batch, generated, config):
    real_view, fake_view = seen_by_d(batch, config)
    d_of_real = lambda faces: d_reads(nets, faces, real_view, config)  # noqa: E731
    # 1. real faces; for R1 also the gradient of D's real/fake logit with respect to them
    if config.r1_gamma:
        (real_adv, real_cls), real_grad = autodiff.value_and_input_grad(d_of_real, batch.images)
    else:
        real_adv, real_cls = d_of_real(batch.images)
    # 2. the translations
    sigmoid = config.emotion_head == "sigmoid"
    fake_adv, fake_cls = d_reads(nets, generated["fakes"], fake_view, config, emotions=sigmoid)
    terms = {"adv": losses.bce(real_adv, True) + losses.bce(fake_adv, False),
             "cls": emotion_loss(real_cls, batch.labels, config)}
    if sigmoid:
        terms["cls"] += losses.emotion_loss(fake_cls)  # T2: "no emotion" for translations
    total = config.d_gan_loss_w * terms["adv"] + config.d_cl_loss_w * terms["cls"]
    if config.r1_gamma:
        terms["r1"] = ops.mean(ops.sum(ops.square(real_grad), axis=(1, 2, 3)))
        total += config.r1_gamma / 2 * terms["r1"]
    return total, terms


def generator_loss(nets, batch, generated, config):
    adv, cls = d_reads(nets, generated["fakes"], seen_by_d(batch, config)[1], config)
    copies = NUM_CLASSES - 1 if config.cycle == "translation" else 1  # reconstructions per face
    cycle = ops.mean(ops.abs(generated["rec"] - ops.tile(batch.images, (copies, 1, 1, 1))))
    terms = {"adv": losses.bce(adv, True), "cls": emotion_loss(cls, fake_targets(batch), config),
             CYCLE_TERM[config.cycle]: cycle}
    total = config.g_gan_loss_w * terms["adv"] + config.g_cl_loss_w * terms["cls"] + config.rec_loss_w * cycle
    if config.attention:
        terms.update(mask=ops.mean(generated["masks"]), mask_tv=total_variation(generated["masks"]))
        total += config.lambda_mask * terms["mask"] + config.lambda_mask_tv * terms["mask_tv"]
    return total, terms


# ## Main

def main(argv=None):
    train_config.train_from_command_line(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
