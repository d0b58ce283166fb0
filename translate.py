"""Your own photo in seven expressions: find the face, crop it like FER2013, translate it.

    python translate.py photo.jpg                                  # -> photo_emotions.png
    python translate.py group.jpg --all_faces --out group.png      # every face found, one row each
    python translate.py face.png --no_detect --per_emotion faces/  # already a cropped face
    python translate.py photo.jpg --generator saved_models/t2      # any finished T1 or T2 run

The photo (JPEG, PNG, ...; colour or grey; any size; EXIF rotation applied) is made grey, and
OpenCV's frontal-face Haar cascade finds the faces. Each face is cropped the way FER2013 frames its
faces: a square FER_MARGIN times the side of the detector's box, centred on the box, the photo's edge
pixels repeated where the square leaves the photo, shrunk to 48x48. `--no_detect` takes the image
as the face: its centred square, 48x48.

FER_MARGIN was measured, not guessed: 500 FER2013 PublicTest faces, enlarged 3-6x onto a larger
canvas, were re-detected and re-cropped with margins 0.80 to 1.40 (steps of 0.02) and centre shifts
of -0.10 to +0.10 box sides; 1.02 with no shift reproduced the original 48x48 frames best (median L1
31 grey levels, vs 44 at 0.90 and 39 at 1.10). The detector's box is the FER frame: median box side
47.0 px of 48, its centre within 0.002 of a side of the frame's.

The generator (the run folder of a finished T1 or T2 training; default saved_models/pretrained)
turns every face into all seven emotions. The PNG grid has one row per face; its columns are the
48x48 input crop, then Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral. Bad input (no such
file, not an image, no face found, no generator, an output name that is not an image file) stops
with one `error: ...` line, exit status 2. Keras is imported only once the photo holds a face.
"""
import argparse
import os
import pathlib
import sys

import cv2
import numpy as np

import atomic
import grids
import run_folder
from data_loader import EMOTIONS, IMAGE_SIZE, NUM_CLASSES, grey_pixels, to_float, to_uint8
from repo import REPO_ROOT

DEFAULT_GENERATOR = REPO_ROOT / "saved_models" / "pretrained"
CASCADE = "haarcascade_frontalface_default.xml"
FER_MARGIN = 1.02        # crop side / Haar box side that reproduces FER2013's framing (measured)
DETECT_MAX_SIDE = 1024   # photos are shrunk to this for detection only (speed); crops use full size


class TranslateError(ValueError):
    """Bad input; reported as one `error: ...` line, exit status 2."""


# ---------------------------------------------------------------------------------------------
# Photo -> 48x48 faces
# ---------------------------------------------------------------------------------------------

def read_photo(path):
    """A photo file -> grey uint8 (H, W), upright as its EXIF orientation says."""
    from PIL import Image, ImageOps
    path = pathlib.Path(path)
    if path.is_dir():
        raise TranslateError(f"{path}: is a folder; give a photo file (JPEG, PNG, ...)")
    if not path.is_file():
        raise TranslateError(f"{path}: no such file")
    try:
        with Image.open(path) as image:
            return grey_pixels(ImageOps.exif_transpose(image))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise TranslateError(f"{path}: not a readable image (JPEG, PNG, ...): "
                             f"{str(err).splitlines()[0]}") from None


def _grey(image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim != 2:
        raise ValueError(f"expected a grey (H, W) or BGR (H, W, 3) image, got shape {image.shape}")
    return image


def _face_detector():
    if not hasattr(cv2, "CascadeClassifier"):
        raise TranslateError(f"OpenCV {cv2.__version__} has no Haar cascade face detector (OpenCV 5 "
                             "dropped it): pip install 'opencv-python-headless<5', or pass --no_detect")
    detector = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, CASCADE))
    if detector.empty():
        raise TranslateError(f"{cv2.data.haarcascades}{CASCADE}: OpenCV's face cascade is missing")
    return detector


def detect_faces(grey):
    """Boxes (x, y, w, h) of the frontal faces in a grey uint8 image, largest first."""
    scale = min(1.0, DETECT_MAX_SIDE / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    boxes = _face_detector().detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4) / scale
    return sorted((tuple(map(float, box)) for box in boxes), key=lambda box: -box[2] * box[3])


def crop_face(grey, box, margin=FER_MARGIN):
    """The square `margin` x the box's side, centred on the box, resized to 48x48 uint8."""
    x, y, w, h = box
    side = max(1, round(margin * max(w, h)))
    left, top = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    height, width = grey.shape
    pad = max(0, -left, -top, left + side - width, top + side - height)
    if pad:  # the square leaves the photo: repeat its edge pixels (FER2013 has no black borders)
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = grey[top + pad:top + pad + side, left + pad:left + pad + side]
    return cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)


def crop_faces(image, all_faces=False, margin=FER_MARGIN):
    """FER2013-framed 48x48 uint8 crops of the faces in a BGR or grey image: the largest face, or
    all of them (largest first) with `all_faces`; [] when no face is found."""
    grey = _grey(image)
    boxes = detect_faces(grey)
    return [crop_face(grey, box, margin) for box in (boxes if all_faces else boxes[:1])]


def centre_face(image):
    """An already-cropped face: its centred square, 48x48 uint8 (no detection)."""
    grey = _grey(image)
    height, width = grey.shape
    side = min(height, width)
    return crop_face(grey, ((width - side) // 2, (height - side) // 2, side, side), margin=1.0)


# ---------------------------------------------------------------------------------------------
# Faces -> seven expressions -> PNGs
# ---------------------------------------------------------------------------------------------

def load_generator(run_dir):
    """The trained generator of a T1/T2 run folder; TranslateError, one line, when it is missing or broken."""
    try:  # loads Keras: only once the photo is known to hold a face
        return run_folder.load_translator(run_dir)
    except run_folder.RunFolderError as err:
        raise TranslateError(str(err)) from None


def translate_faces(translator, faces):
    """uint8 faces (N, 48, 48) -> uint8 (N, 7, 48, 48): every face in every emotion, one batch."""
    faces = np.asarray(faces, np.uint8)
    x = np.repeat(to_float(faces), NUM_CLASSES, axis=0)
    targets = np.tile(np.arange(NUM_CLASSES, dtype=np.int32), len(faces))
    return to_uint8(translator.translate(x, targets)).reshape(len(faces), NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE)


def write_grid(path, faces, translations, title=""):
    """PNG: a row per face; columns the input crop and its seven translations, labelled."""
    columns = [faces, *np.moveaxis(np.asarray(translations), 1, 0)]
    return grids.write_grid(path, [to_float(column) for column in columns], ["input", *EMOTIONS],
                            [f"face {i}" for i in range(1, len(faces) + 1)], title)


def write_per_emotion(folder, faces, translations):
    """48x48 PNGs: face<i>_input.png and face<i>_<emotion>.png for every face and emotion."""
    from PIL import Image
    written = []
    for i, (face, row) in enumerate(zip(faces, translations), start=1):
        for name, image in zip(["input", *EMOTIONS], [face, *row]):
            path = pathlib.Path(folder) / f"face{i}_{name.lower()}.png"
            with atomic.replacing(path) as temporary:
                Image.fromarray(image).save(temporary, format="PNG")
            written.append(path)
    return written


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def check_image_name(path):
    """`path` unless it is a folder or its suffix names no image format Pillow writes (TranslateError)."""
    from PIL import Image
    path = pathlib.Path(path)
    Image.init()
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if path.is_dir() or image_format not in Image.SAVE:
        reason = "it is a folder" if path.is_dir() else f"{path.suffix or 'no suffix'}: not an image format"
        raise TranslateError(f"{path}: --out must be an image file name such as grid.png ({reason})")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("photo", help="a JPEG/PNG photo (colour or grey, any size)")
    parser.add_argument("--generator", default=str(DEFAULT_GENERATOR),
                        help="run folder of a trained T1/T2 generator (default: saved_models/pretrained)")
    parser.add_argument("--out", help="the grid PNG (default: <photo name>_emotions.png here)")
    parser.add_argument("--all_faces", action="store_true", help="every face found, not only the largest")
    parser.add_argument("--no_detect", action="store_true",
                        help="the image is already a cropped face: grey, centred square, 48x48")
    parser.add_argument("--per_emotion", metavar="DIR",
                        help="also write face<i>_<emotion>.png (48x48) into DIR")
    args = parser.parse_args(argv)
    try:
        out = check_image_name(args.out or f"{pathlib.Path(args.photo).stem}_emotions.png")
        grey = read_photo(args.photo)
        faces = [centre_face(grey)] if args.no_detect else crop_faces(grey, all_faces=args.all_faces)
        if not faces:
            raise TranslateError(f"{args.photo}: no face found (the detector needs a frontal, upright "
                                 "face; for an already-cropped face pass --no_detect)")
        translations = translate_faces(load_generator(args.generator), faces)
        write_grid(out, faces, translations, title=f"{pathlib.Path(args.photo).name} -> "
                                                   f"{pathlib.Path(args.generator).name}")
        if args.per_emotion:
            write_per_emotion(args.per_emotion, faces, translations)
    except (TranslateError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(faces)} face{'s' if len(faces) > 1 else ''} -> {out}"
          + (f" and {args.per_emotion}/" if args.per_emotion else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
