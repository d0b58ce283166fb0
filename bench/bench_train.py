"""T2 training throughput: our trainer vs. the original Keras-2-style loop, on the same networks.

    python bench/bench_train.py [--paths default,avx2,eigen] [--base_filters 64] [--batch_size 64]
                                [--rounds 3] [--steps 3] [--layer_repeats 3]

Each kernel path runs in its own subprocess (TensorFlow reads these variables when it loads):
- default: what a user gets with no variable set (backend_env turns oneDNN on); on this CPU's widest ISA;
- avx2:    the same, with oneDNN limited to AVX2 kernels (ONEDNN_MAX_CPU_ISA=AVX2): what an AVX2-only
           machine (e.g. AMD EPYC before Zen 4) gets by default;
- eigen:   TF_ENABLE_ONEDNN_OPTS=0, TensorFlow's Eigen kernels: what such a machine got before
           backend_env turned oneDNN on.
Each path prints which kernels it measured (oneDNN on/off and, from ONEDNN_VERBOSE of a probe
convolution, the ISA of the kernels oneDNN picked).

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

Last, a per-layer profile of our step: every conv, transposed conv, dense layer and norm of G and D
alone, on as many maps as it sees in a step (G_enc N, G_dec and D 7N), forward and forward +
backward (input and weight gradients), best of --layer_repeats, with achieved GFLOP/s (3x the
forward FLOPs for forward + backward) and its share of the summed layer times.
"""
import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

PATHS = {  # name -> environment changes (None: unset, so that the user's default applies)
    "default": {"TF_ENABLE_ONEDNN_OPTS": None, "ONEDNN_MAX_CPU_ISA": None},
    "avx2": {"TF_ENABLE_ONEDNN_OPTS": None, "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "eigen": {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": None},
}
REPO = pathlib.Path(__file__).resolve().parents[1]


def path_env(path):
    env = {k: v for k, v in os.environ.items() if PATHS[path].get(k, v) is not None}
    return {**env, **{k: v for k, v in PATHS[path].items() if v is not None}}


def run_paths(paths, argv):
    """This script once per path, each in a subprocess with that path's environment."""
    for path in paths:
        print(f"==== path {path}: " + ", ".join(f"{k}={v if v is not None else '(unset)'}"
                                              for k, v in PATHS[path].items()), flush=True)
        subprocess.run([sys.executable, __file__, *argv, "--in_process"], env=path_env(path), check=True)


if __name__ == "__main__" and "--in_process" not in sys.argv:
    parsed = argparse.ArgumentParser(add_help=False)
    parsed.add_argument("--paths", default=",".join(PATHS))
    known, rest = parsed.parse_known_args()
    if "-h" not in rest and "--help" not in rest:
        chosen = known.paths.split(",")
        unknown = sorted(set(chosen) - set(PATHS))
        if unknown:
            sys.exit(f"bench_train.py: unknown path(s) {unknown}; choose from {list(PATHS)}")
        run_paths(chosen, rest)
        sys.exit(0)

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO))

import backend_env  # noqa: E402,F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

import ccyclegan_t2 as t2  # noqa: E402
import trainer  # noqa: E402
from data_loader import NUM_CLASSES  # noqa: E402


def random_batch(batch_size, seed=0, experiment=t2):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (batch_size, 48, 48, 1)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32)
    return images, labels, experiment.draw_targets(labels, rng)


# ---------------------------------------------------------------------------------------------
# (a) ours
# ---------------------------------------------------------------------------------------------

class StepTimes(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.started)


def ours(config, batch, experiment=t2):
    model = trainer.build_model(experiment, config)
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

def layer_flops(layer):
    """Multiply-adds x 2 of one forward pass of a conv or dense layer on one map (0 for others)."""
    if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
        kh, kw, *channels = layer.kernel.shape
        spatial = layer.input.shape if isinstance(layer, layers.Conv2DTranspose) else layer.output.shape
        return 2 * spatial[1] * spatial[2] * kh * kw * channels[0] * channels[1]
    if isinstance(layer, layers.Dense):
        return 2 * int(np.prod(layer.kernel.shape))
    return 0


def forward_flops(net, batch_size):
    return sum(layer_flops(layer) for layer in net.layers) * batch_size


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


# ---------------------------------------------------------------------------------------------
# Which kernels, and where the step's time goes
# ---------------------------------------------------------------------------------------------

def widest_isa():
    """The CPU's widest vector instruction set, from /proc/cpuinfo's flags (Linux)."""
    try:
        flags = set(re.search(r"^flags\s*:(.*)$", pathlib.Path("/proc/cpuinfo").read_text(), re.M)[1].split())
    except (OSError, TypeError):
        return "unknown (no /proc/cpuinfo)"
    for flag, name in (("amx_tile", "AMX + AVX-512"), ("avx512f", "AVX-512"), ("avx2", "AVX2"),
                       ("avx", "AVX")):
        if flag in flags:
            return name + (" + FMA" if "fma" in flags else "")
    return "SSE"


PROBE = ("import backend_env, tensorflow as tf; x = tf.ones((1, 8, 8, 8)); "
         "tf.function(lambda: tf.nn.conv2d(x, tf.ones((4, 4, 8, 8)), 2, 'VALID'))().numpy()")


def onednn_kernels():
    """What TensorFlow runs convolutions with in a process with this environment."""
    from tensorflow.python.util import _pywrap_util_port

    if not _pywrap_util_port.IsMklEnabled():
        return "oneDNN off (Eigen kernels)"
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, "ONEDNN_VERBOSE": "1"}, timeout=120)
    found = re.search(r"convolution,([^,]+),", probe.stdout)
    return f"oneDNN on, convolution kernel {found[1] if found else '(not reported)'}"


def profiled_layers(nets, n):
    """(net, label, layer, input shape, output shape, FLOPs per map, maps per call) for every conv,
    transposed conv, dense layer and norm; after each of our transposed convs, Keras' own layer
    with the same config and weights, for comparison."""
    kinds = (layers.Conv2D, layers.Conv2DTranspose, layers.Dense, layers.GroupNormalization)
    for name, maps in (("g_enc", n), ("g_dec", NUM_CLASSES * n), ("d", NUM_CLASSES * n)):
        for layer in nets[name].layers:
            if not isinstance(layer, kinds):
                continue
            shapes = (tuple(layer.input.shape[1:]), tuple(layer.output.shape[1:]))
            yield name, type(layer).__name__, layer, *shapes, layer_flops(layer), maps
            if isinstance(layer, layers.Conv2DTranspose) and type(layer) is not layers.Conv2DTranspose:
                stock = layers.Conv2DTranspose.from_config(layer.get_config())
                stock.build((None, *shapes[0]))
                stock.set_weights(layer.get_weights())
                yield name, "  Keras' own", stock, *shapes, layer_flops(layer), maps


def layer_times(layer, input_shape, output_shape, maps, repeats):
    """Best-of-`repeats` seconds of the layer's forward and forward + backward on `maps` maps."""
    x = tf.random.normal((maps, *input_shape))
    dy = tf.random.normal((maps, *output_shape))
    weights = [v.value for v in layer.trainable_variables]

    @tf.function
    def forward():
        return tf.reduce_sum(layer(x))

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return [tf.reduce_sum(g) for g in tape.gradient(y, [x, *weights], output_gradients=dy)]

    forward().numpy(), [g.numpy() for g in forward_backward()]
    return (min(_timed(lambda: forward().numpy()) for _ in range(repeats)),
            min(_timed(lambda: [g.numpy() for g in forward_backward()]) for _ in range(repeats)))


def print_layer_profile(nets, n, peak, repeats):
    rows = [(row, *layer_times(row[2], *row[3:5], row[6], repeats)) for row in profiled_layers(nets, n)]
    total = sum(both for row, _, both in rows if not row[1].startswith(" "))
    print(f"\nper-layer profile of our step (each layer alone, best of {repeats}; GFLOP/s of forward + "
          f"backward = 3x forward FLOPs; share of the summed times of our layers; '<50%': below half "
          f"the matmul peak):")
    print(f"{'net':5s} {'layer':15s} {'input':>10s} {'output':>10s} {'maps':>4s} {'fwd ms':>8s} "
          f"{'fwd+bwd ms':>10s} {'GFLOP/s':>7s} {'of peak':>7s} {'share':>5s}")
    for (name, label, _, shape_in, shape_out, flops, maps), fwd, both in rows:
        rate = 3 * flops * maps / both / 1e9
        rates = f"{rate:7.1f} {rate / peak:7.0%}" if flops else f"{'-':>7s} {'-':>7s}"
        share = "" if label.startswith(" ") else f"{both / total:5.1%}"
        slow = " <50%" if flops and rate < 0.5 * peak else ""
        shape_in, shape_out = ("x".join(map(str, shape)) for shape in (shape_in, shape_out))
        print(f"{name:5s} {label[:15]:15s} {shape_in:>10s} {shape_out:>10s} {maps:4d} "
              f"{fwd * 1e3:8.1f} {both * 1e3:10.1f} {rates} {share:>5s}{slow}")
    print(f"sum of our layers' forward + backward times: {total:.3f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default=",".join(PATHS), help="kernel paths to measure, comma-separated: "
                        + ", ".join(PATHS) + " (see the module docstring)")
    parser.add_argument("--base_filters", type=int, default=t2.Config.base_filters)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per side per round")
    parser.add_argument("--layer_repeats", type=int, default=3, help="timings per layer (best is kept)")
    parser.add_argument("--in_process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")  # one tf.function per profiled layer is intended, not retracing
    config = t2.Config(base_filters=args.base_filters, batch_size=args.batch_size)
    batch = random_batch(args.batch_size)
    n = args.batch_size
    print(f"T2, base_filters {config.base_filters}, batch {n}, backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPU cores ({widest_isa()}); {onednn_kernels()}; "
          f"{args.rounds} rounds x {args.steps} steps per side", flush=True)

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
          f"{achieved / peak:.0%} of it", flush=True)
    print_layer_profile(nets, n, peak, args.layer_repeats)


if __name__ == "__main__":
    main()
