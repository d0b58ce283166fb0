"""T2 training throughput: our trainer vs. the original Keras-2-style loop, on the same networks.

    python bench/bench_train.py [--base_filters 64] [--batch_size 64] [--rounds 3] [--steps 4]

Measured side by side in one run, in alternating rounds (the median round is reported, so a busy
shared machine hurts both sides alike):
(a) ours: `trainer.GAN` fit() steps -- G encodes once and decodes 7N faces in one call, D is
    updated on real vs. those translations, G is updated against the new D through the same
    forward pass;
(b) the original loop of ccyclegan_t26.py: `g_enc.predict`, six `g_dec.predict` calls, one
    `d.train_on_batch` on the 7N real + translated faces (shuffled, "no emotion" labels for the
    translations), one `combined.train_on_batch` on the 6N (face, own label, target) triples
    (translation -> D, plus reconstruction through the own label).
Both see identical random faces and labels (throughput does not depend on pixel values).

Then our step's achieved GFLOP/s against this machine's fp32 matmul peak (a 2048^3 matmul),
measured in the same run. The step's FLOPs are counted from layer shapes: convolutions and dense
layers only (2 x multiply-adds), forward once, plus 2x forward for the backward pass where weight
and input gradients are taken (G; D in its own update) and 1x where only input gradients are
(D inside G's update). Norms, activations and Adam are left out, so this undercounts the work a
little. (TensorFlow's graph profiler reported ~1.5x more for the same step; we could not reconcile
its count with the layer shapes, so we do not use it.)
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import backend_env  # noqa: E402,F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

import ccyclegan_t2 as t2  # noqa: E402
import trainer  # noqa: E402
from data_loader import NUM_CLASSES  # noqa: E402


def random_batch(batch_size, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (batch_size, 48, 48, 1)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32)
    return images, labels, t2.draw_targets(labels, rng)


# ---------------------------------------------------------------------------------------------
# (a) ours
# ---------------------------------------------------------------------------------------------

class StepTimes(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.started)


def ours(config, batch):
    model = trainer.build_model(t2, config)
    timer = StepTimes()

    def steps(count):
        timer.times = []
        model.fit((batch for _ in range(count)), epochs=1, steps_per_epoch=count, verbose=0,
                  shuffle=False, callbacks=[timer])
        return sum(timer.times)
    return model, steps


# ---------------------------------------------------------------------------------------------
# (b) the original loop (ccyclegan_t26.py's train(), d_g_ratio=1), on the same networks
# ---------------------------------------------------------------------------------------------

def original(config, batch):
    keras.utils.set_random_seed(config.seed)
    nets = t2.build_networks(config)
    g_enc, g_dec, d = nets["g_enc"], nets["g_dec"], nets["d"]
    adam = lambda: keras.optimizers.Adam(config.adam_lr, config.adam_beta_1, config.adam_beta_2)  # noqa: E731
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    d.compile(optimizer=adam(), loss=[bce, bce], loss_weights=[config.d_gan_loss_w, config.d_cl_loss_w])

    face = keras.Input((48, 48, 1))
    label0, label1 = keras.Input((), dtype="int32"), keras.Input((), dtype="int32")
    z = g_enc(face)
    fake, reconstr = g_dec([*z, label1]), g_dec([*z, label0])
    gan_valid, class_valid = d(fake)
    combined = keras.Model([face, label0, label1], [gan_valid, class_valid, reconstr])

    images, labels0, labels1_all = batch
    n = len(images)
    rng = np.random.default_rng(1)
    one_hot = lambda labels: np.eye(NUM_CLASSES, dtype=np.float32)[labels]  # noqa: E731
    valid, fakes_target = np.ones((n, 1), np.float32), np.zeros((n, 1), np.float32)

    def d_step():
        zs = g_enc.predict(images, verbose=0)
        fakes = [g_dec.predict([*zs, labels1_all[:, k]], verbose=0) for k in range(NUM_CLASSES - 1)]
        idx = rng.permutation(NUM_CLASSES * n)
        d_images = np.concatenate([images, *fakes])[idx]
        d_labels = np.concatenate([one_hot(labels0), np.zeros(((NUM_CLASSES - 1) * n, NUM_CLASSES),
                                                               np.float32)])[idx]
        d_valid = np.concatenate([valid] + [fakes_target] * (NUM_CLASSES - 1))[idx]
        d.train_on_batch(d_images, [d_valid, d_labels])

    def g_step():
        idx = rng.permutation((NUM_CLASSES - 1) * n)
        g_images = np.concatenate([images] * (NUM_CLASSES - 1))[idx]
        g_labels0 = np.concatenate([labels0] * (NUM_CLASSES - 1))[idx]
        g_labels1 = labels1_all.T.reshape(-1)[idx]
        combined.train_on_batch([g_images, g_labels0, g_labels1],
                                [np.ones((len(idx), 1), np.float32), one_hot(g_labels1), g_images])

    # Keras 3 traces a train function with the variables trainable at its first call: D's own
    # function with D trainable, the combined one (traced after d.trainable = False) with G only.
    d_step()
    d.trainable = False
    combined.compile(optimizer=adam(), loss=[bce, bce, "mae"],
                     loss_weights=[config.g_gan_loss_w, config.g_cl_loss_w, config.rec_loss_w])
    g_step()

    def steps(count):
        started = time.perf_counter()
        for _ in range(count):
            d_step()
            g_step()
        return time.perf_counter() - started
    return nets, steps


# ---------------------------------------------------------------------------------------------
# FLOPs and the matmul peak
# ---------------------------------------------------------------------------------------------

def forward_flops(net, batch_size):
    """Multiply-adds x 2 of the conv and dense layers of one forward pass."""
    total = 0
    for layer in net.layers:
        if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
            kh, kw, *channels = layer.kernel.shape
            spatial = layer.input.shape if isinstance(layer, layers.Conv2DTranspose) else layer.output.shape
            total += 2 * spatial[1] * spatial[2] * kh * kw * channels[0] * channels[1]
        elif isinstance(layer, layers.Dense):
            total += 2 * int(np.prod(layer.kernel.shape))
    return total * batch_size


def step_flops(nets, n):
    enc, dec, d = (forward_flops(nets[k], 1) for k in ("g_enc", "g_dec", "d"))
    g_forward = n * enc + NUM_CLASSES * n * dec
    return (3 * g_forward                                   # G forward, backward (2x)
            + 3 * NUM_CLASSES * n * d                       # D step on 7N faces
            + 2 * (NUM_CLASSES - 1) * n * d)                # G step: D forward + input gradients


def matmul_peak(size=2048, repeats=10):
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
    matmul().numpy()
    best = min(_timed(lambda: matmul().numpy()) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_filters", type=int, default=t2.Config.base_filters)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=4, help="steps per side per round")
    args = parser.parse_args()
    config = t2.Config(base_filters=args.base_filters, batch_size=args.batch_size)
    batch = random_batch(args.batch_size)
    n = args.batch_size
    print(f"T2, base_filters {config.base_filters}, batch {n}, backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPU cores; {args.rounds} rounds x {args.steps} steps per side")

    _, ours_steps = ours(config, batch)
    nets, original_steps = original(config, batch)
    ours_steps(2)      # trace + warm up
    original_steps(1)
    ours_rate, original_rate = [], []
    for _ in range(args.rounds):
        ours_rate.append(args.steps * n / ours_steps(args.steps))
        original_rate.append(args.steps * n / original_steps(args.steps))
    ratios = [a / b for a, b in zip(ours_rate, original_rate)]
    ours_median, original_median = statistics.median(ours_rate), statistics.median(original_rate)
    print(f"(a) ours:          {ours_median:7.1f} images/s  (rounds: "
          + ", ".join(f"{r:.1f}" for r in ours_rate) + ")")
    print(f"(b) original loop: {original_median:7.1f} images/s  (rounds: "
          + ", ".join(f"{r:.1f}" for r in original_rate) + ")")
    print(f"speed-up ours / original: {statistics.median(ratios):.2f}x (per round: "
          + ", ".join(f"{r:.2f}" for r in ratios) + ")")

    flops = step_flops(nets, n)
    step_seconds = n / ours_median
    peak = matmul_peak()
    achieved = flops / step_seconds / 1e9
    print(f"our step: {flops / 1e9:.1f} GFLOP (conv + dense) in {step_seconds:.3f} s = "
          f"{achieved:.1f} GFLOP/s")
    print(f"fp32 matmul peak (2048^3, best of 10): {peak:.1f} GFLOP/s -> our step reaches "
          f"{achieved / peak:.0%} of it")


if __name__ == "__main__":
    main()
