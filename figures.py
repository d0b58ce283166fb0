"""The README's pictures of a generator, remade from its run folder: its sample grid and a translate.py gallery.

    python figures.py saved_models/pretrained --data datasets/fer2013.csv --out docs

Both start from the sample grids' fixed faces (data_loader.fixed_faces: per emotion, the first
clean frontal photograph of PublicTest in a seeded order -- a rule in code, not a choice by hand):
- <out>/<run>_grid.png: the generator's sample grid of those faces (input, the seven emotions,
  the reconstruction), as a training run draws it.
- <out>/<run>_gallery.png: the same faces enlarged 4x side by side on a grey canvas, given to
  translate.py's pipeline as one photo: detected, cropped the FER2013 way, translated; rows left
  to right on the canvas.
- with --masks, <out>/<run>_masks.png: G's attention masks for the grid's translations (T3 with
  --attention), white where the input's pixel is kept, black where G's colour replaces it.
Bad input (no data, no generator) stops with one `error: ...` line, exit status 2.
"""
import argparse
import pathlib
import sys

import cv2
import numpy as np

import data_loader
import grids
import run_folder
import translate
from data_loader import EMOTIONS, IMAGE_SIZE, DataError

GALLERY_SCALE, GALLERY_MARGIN = 4, 64   # faces enlarged 4x, 64 grey pixels around each


def gallery_canvas(faces):
    """uint8 faces (N, 48, 48) enlarged side by side on a mid-grey canvas, as one photo."""
    side = IMAGE_SIZE * GALLERY_SCALE
    canvas = np.full((side + 2 * GALLERY_MARGIN, len(faces) * (side + GALLERY_MARGIN) + GALLERY_MARGIN), 128, np.uint8)
    for i, face in enumerate(faces):
        left = GALLERY_MARGIN + i * (side + GALLERY_MARGIN)
        canvas[GALLERY_MARGIN:GALLERY_MARGIN + side, left:left + side] = cv2.resize(
            face, (side, side), interpolation=cv2.INTER_CUBIC)
    return canvas


def write_gallery(path, translator, faces, title):
    """translate.py's grid of the faces found on their canvas, left to right; the number found."""
    squares, crops = translate.find_faces(gallery_canvas(faces), all_faces=True)
    crops = [crop for _, crop in sorted(zip(squares, crops), key=lambda pair: pair[0][0])]
    translate.write_grid(path, crops, translate.translate_faces(translator, crops), title)
    return len(crops)


def write_mask_grid(path, translator, faces, labels, title):
    """The attention masks of the sample grid's translations, beside their input faces."""
    masks = [2.0 * mask - 1.0 for mask in grids.to_every_emotion(translator.masks, faces)]  # 1 -> white
    return grids.write_grid(path, [faces, *masks], ["input", *EMOTIONS], [EMOTIONS[int(label)] for label in labels],
                            title=title)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run_dir", help="a finished run's folder (saved_models/<run>)")
    parser.add_argument("--data", default=None, help="FER2013 CSV, image folder or .npz (None: datasets/fer2013.csv)")
    parser.add_argument("--seed", type=int, default=0, help="the fixed faces' seed (training's --seed)")
    parser.add_argument("--out", default="docs", help="folder for the PNGs")
    parser.add_argument("--masks", action="store_true", help="also <run>_masks.png: G's attention masks (T3)")
    args = parser.parse_args(argv)
    run = pathlib.Path(args.run_dir)
    try:
        split = data_loader.load_fer2013(args.data).split("PublicTest")
        translator = run_folder.load_translator(run)
    except (DataError, run_folder.RunFolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.masks and not translator.has_masks():
        print(f"error: {run}: its generator has no attention masks (--masks needs T3 with --attention)",
              file=sys.stderr)
        return 2
    faces, labels = data_loader.fixed_faces(split, seed=args.seed)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = grids.write_sample_grid(out / f"{run.name}_grid.png", translator, faces, labels, title=run.name)
    found = write_gallery(out / f"{run.name}_gallery.png", translator, data_loader.to_uint8(faces),
                          f"{len(faces)} PublicTest faces on one canvas -> {run.name}")
    written = [grid, out / f"{run.name}_gallery.png"]
    if args.masks:
        written.append(write_mask_grid(out / f"{run.name}_masks.png", translator, faces, labels, run.name))
    print(f"{'; '.join(map(str, written))} ({found} of {len(faces)} faces detected in the gallery)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
