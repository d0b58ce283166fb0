"""Can a fresh discriminator tell a generator's translations from real faces, with and without
DiffAugment's shifts?

    python probe_discriminator.py saved_models/pretrained --data datasets/fer2013.csv --steps 600

Builds the run's D (its experiment's, at its width, from scratch) twice and trains only its
real/fake output to tell real Training faces from translations of other Training faces, each into a
random other emotion (Adam at the run's learning rate and betas; each batch the run's batch size of
real faces and as many translations): one D on the faces as they are, one on the faces moved by
DiffAugment's shifts as T3's D sees them (up to 6 pixels, zeros coming in, drawn per face and step).
Every --every steps it prints each D's loss over those steps and its ROC AUC (0.5: it cannot tell
them apart; 1: always) on held-out PublicTest faces, real and translated, seen the way that D was
trained; at the end the unshifted D's AUC on those faces all moved by a few fixed shifts, which
tells whether what it found moves with the face or stays at the same pixels. The generator is not
changed. Bad input (no data, no generator) stops with one `error: ...` line, exit status 2; nothing
is written.
"""
import argparse
import pathlib
import sys

import numpy as np

import data_loader
import run_folder
from data_loader import NUM_CLASSES, DataError

FIXED_SHIFTS = ((0, 0), (1, 0), (0, 1), (2, 2), (6, 6))  # (dy, dx) in pixels


def shifted(faces, shifts):
    """Faces (N, 48, 48, 1) moved by the (dy, dx) rows of `shifts` (N, 2), zeros coming in (T3's
    DiffAugment)."""
    from keras import ops

    import ccyclegan_t3
    params = np.concatenate([shifts, np.zeros_like(shifts)], axis=1).astype(np.int32)
    moved = ccyclegan_t3.diff_augment(ops.convert_to_tensor(faces), ops.convert_to_tensor(params), 0)
    return ops.convert_to_numpy(moved)


def random_shifts(n, rng):
    import ccyclegan_t3
    return rng.integers(-ccyclegan_t3.SHIFT, ccyclegan_t3.SHIFT + 1, (n, 2))


def mean_logits(d, faces, batch_size=256):
    """D's real/fake logit of each face, averaged over its map where it judges patches (T1, --d_patch)."""
    from keras import ops
    chunks = (faces[i:i + batch_size] for i in range(0, len(faces), batch_size))
    return np.concatenate([ops.convert_to_numpy(d(chunk, training=False)).reshape(len(chunk), -1).mean(axis=1)
                           for chunk in chunks])


def auc(d, real, fake):
    """ROC AUC of D's real/fake logits: real against fake (0.5: D cannot tell them apart)."""
    from sklearn.metrics import roc_auc_score
    return roc_auc_score(np.r_[np.ones(len(real)), np.zeros(len(fake))],
                         np.concatenate([mean_logits(d, real), mean_logits(d, fake)]))


def probe(build_d, train, held_out, *, steps, batch_size, learning_rate, beta_1, beta_2, every, seed,
          seen=("sharp", "shifted"), say=print):
    """Train a D from `build_d()` on `train` (real, fake) faces for each way they are `seen`, as they
    are (sharp) or shifted; `say` each D's loss and held-out AUC every `every` steps. Returns the Ds
    ({"sharp": D, "shifted": D}) and their last AUCs."""
    import keras
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    views = {"sharp": lambda faces: faces, "shifted": lambda faces: shifted(faces, random_shifts(len(faces), rng))}
    views = {name: views[name] for name in seen}
    held_out_seen = {name: [view(faces) for faces in held_out] for name, view in views.items()}
    judges = {}
    for name in views:
        d = build_d()
        judge = keras.Model(d.input, d.outputs[0])  # the real/fake output alone
        judge.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
        judges[name] = judge
    is_real = np.repeat(np.float32([1, 0]), batch_size)  # a batch: the real faces, then the translations
    last, losses = {}, {name: [] for name in judges}
    for step in range(1, steps + 1):
        batch = np.concatenate([kind[rng.integers(0, len(kind), batch_size)] for kind in train])
        for name, judge in judges.items():
            shape = judge.output.shape[1:]  # one logit, or a map of them (T1, --d_patch)
            targets = np.broadcast_to(is_real.reshape(-1, *[1] * len(shape)), (len(is_real), *shape))
            losses[name].append(float(np.asarray(judge.train_on_batch(views[name](batch), targets))))
        if step % every == 0 or step == steps:
            last = {name: auc(judge, *held_out_seen[name]) for name, judge in judges.items()}
            say(f"step {step}: " + ", ".join(f"{name} D loss {np.mean(losses[name][-every:]):.3f} (chance 0.693) "
                                            f"held-out AUC {last[name]:.3f}" for name in judges))
    return judges, last


def translations(translator, split, indices, rng):
    """The faces of `split` at `indices`, each translated into a random other emotion."""
    labels = split.labels[indices]
    targets = ((labels + rng.integers(1, NUM_CLASSES, len(labels))) % NUM_CLASSES).astype(np.int32)
    return translator.translate(data_loader.to_float(split.images[indices]), targets)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run_dir", help="a finished run's folder (saved_models/<run>)")
    parser.add_argument("--data", default=None, help="FER2013 CSV, image folder or .npz (None: datasets/fer2013.csv)")
    parser.add_argument("--faces", type=int, default=8000, help="real Training faces, and as many translated")
    parser.add_argument("--held_out", type=int, default=1000, help="real PublicTest faces, and as many translated")
    parser.add_argument("--steps", type=int, default=600, help="training steps of each D")
    parser.add_argument("--every", type=int, default=100, help="print the held-out AUCs every this many steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.every < 1:
        print("error: --steps and --every take 1 or more", file=sys.stderr)
        return 2
    try:
        data = data_loader.load_fer2013(args.data)
        train, test = data.split("Training"), data.split("PublicTest")
        translator = run_folder.load_translator(pathlib.Path(args.run_dir))
    except (DataError, run_folder.RunFolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for split, wanted, flag in ((train, 2 * args.faces, "--faces"), (test, 2 * args.held_out, "--held_out")):
        if not 2 <= wanted <= len(split):
            print(f"error: {split.where}: {flag} takes 1 to {len(split) // 2} (it has {len(split)} faces)",
                  file=sys.stderr)
            return 2
    rng = np.random.default_rng(args.seed)
    sets = []
    for split, n in ((train, args.faces), (test, args.held_out)):
        order = rng.permutation(len(split))
        real = data_loader.to_float(split.images[order[:n]])
        sets.append((real, translations(translator, split, order[n:2 * n], rng)))
    config = translator.config
    print(f"{args.run_dir}: {args.faces} + {args.faces} Training faces (real + translated), held out "
          f"{args.held_out} + {args.held_out} PublicTest faces; D of {translator.experiment.__name__} at width "
          f"{config.base_filters}")
    judges, _ = probe(lambda: translator.experiment.build_discriminator(config), *sets, steps=args.steps,
                      batch_size=config.batch_size, learning_rate=config.adam_lr, beta_1=config.adam_beta_1,
                      beta_2=config.adam_beta_2, every=args.every, seed=args.seed)
    held_out = sets[1]
    print("the unshifted D on held-out faces moved by (dy, dx): " + ", ".join(
        f"{shift} AUC {auc(judges['sharp'], *(shifted(f, np.tile(shift, (len(f), 1))) for f in held_out)):.3f}"
        for shift in FIXED_SHIFTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
