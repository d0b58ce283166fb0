"""What each of T3's changes costs per training step, against T2, measured side by side.

T3 (ccyclegan_t3.py) switches each change against T2 by a flag; this prints the seconds per step of
T3 with every default, of T3 with one choice switched at a time (R1 on, T2's own-label
reconstruction, no mask, no DiffAugment, T2's transposed convs, D's emotion head on blurred faces),
of T3 at twice the width, and of T2, all at d_g_ratio 1 (D and G updated on every step) so that
every arm does the same kind of step. The arms run in alternating rounds (these machines are
noisy; the median round is reported) on one random batch, and each is reported as a ratio to T3's
defaults: what a CPU-hour buys at equal steps.

    python bench/bench_t3.py [--base_filters 32] [--batch_size 64] [--rounds 3] [--steps 3]
"""
import argparse
import os
import statistics

from bench_train import ours, random_batch  # (also puts the repository on sys.path; Keras after backend_env)

import ccyclegan_t2 as t2
import ccyclegan_t3 as t3
import keras


def arms(base_filters, batch_size):
    """name -> (experiment module, its Config)."""
    common = dict(batch_size=batch_size, d_g_ratio=1)
    return {
        "T3 defaults": (t3, t3.Config(base_filters=base_filters, **common)),
        "  --r1_gamma 1": (t3, t3.Config(base_filters=base_filters, r1_gamma=1.0, **common)),
        "  --cycle own_label": (t3, t3.Config(base_filters=base_filters, cycle="own_label", **common)),
        "  --no-attention": (t3, t3.Config(base_filters=base_filters, attention=False, **common)),
        "  --no-diff_augment": (t3, t3.Config(base_filters=base_filters, diff_augment=False, **common)),
        "  --upsample transpose": (t3, t3.Config(base_filters=base_filters, upsample="transpose", **common)),
        "  --emotion_blur 1.5": (t3, t3.Config(base_filters=base_filters, emotion_blur=1.5, **common)),
        f"  --base_filters {2 * base_filters}": (t3, t3.Config(base_filters=2 * base_filters, **common)),
        "T2 (--d_g_ratio 1)": (t2, t2.Config(base_filters=base_filters, **common)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_filters", type=int, default=32, help="width of every arm but the wide one")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per arm per round")
    args = parser.parse_args()
    timers = {name: ours(config, random_batch(args.batch_size, experiment=experiment), experiment)[1]
              for name, (experiment, config) in arms(args.base_filters, args.batch_size).items()}
    print(f"base_filters {args.base_filters}, batch {args.batch_size}, backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPU cores; {args.rounds} rounds x {args.steps} steps per arm", flush=True)
    for step in timers.values():
        step(2)  # trace + warm up (seconds for all steps)
    rounds = {name: [] for name in timers}
    for _ in range(args.rounds):
        for name, step in timers.items():
            rounds[name].append(step(args.steps) / args.steps)
    reference = rounds["T3 defaults"]
    for name, seconds in rounds.items():
        ratios = [s / r for s, r in zip(seconds, reference)]
        print(f"{name:24s} {statistics.median(seconds):6.2f} s/step   x{statistics.median(ratios):.2f} of T3's "
              "(rounds: " + ", ".join(f"{s:.2f}" for s in seconds) + ")", flush=True)


if __name__ == "__main__":
    main()
