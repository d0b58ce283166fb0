"""Your own photo in seven expressions: find the face, crop it like FER2013, translate it.

    python translate.py photo.jpg                                  # -> photo_emotions.png
    python translate.py group.jpg --all_faces --out group.png      # every face found, one row each
    python translate.py face.png --no_detect --per_emotion faces/  # already a cropped face
    python translate.py photo.jpg --generator saved_models/t2      # any finished T1, T2 or T3 run
    python translate.py photos/ more.jpg --out results/ --paste_back   # many photos, faces pasted back

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

The generator (the run folder of a finished T1, T2 or T3 training; default saved_models/pretrained)
turns every face into all seven emotions. The PNG grid has one row per face; its columns are the
48x48 input crop, then Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral. `--paste_back` also
writes the photo once per emotion with each translated face blended back in. Bad input (no such
file, not an image, no face found, no generator, an output name that is not an image file) stops
with one `error: ...` line, exit status 2. Keras is imported only once a photo holds a face.

Several photos, or folders of them, go through the generator in batches; every result lands in the
--out folder as <name>_emotions.png (and <name>_<emotion>.png with --paste_back). A photo that cannot
be read or shows no face is skipped with one `skipped: ...` line; a summary ends the run.
"""
import argparse
import itertools
import pathlib
import sys

import cv2
import numpy as np

import atomic
import grids
import run_folder
from data_loader import EMOTIONS, IMAGE_SIZE, NUM_CLASSES, grey_pixels, to_float, to_uint8
from face_detection import DetectorError, detect_faces, face_detector
from repo import REPO_ROOT

DEFAULT_GENERATOR = REPO_ROOT / "saved_models" / "pretrained"
FER_MARGIN = 1.02        # crop side / Haar box side that reproduces FER2013's framing (measured)
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
PHOTOS_PER_BATCH = 32    # photos whose faces share one generator call (memory stays bounded)


class TranslateError(ValueError):
    """Bad input; reported as one `error: ...` line, exit status 2."""


# ---------------------------------------------------------------------------------------------
# Photo -> 48x48 faces
# ---------------------------------------------------------------------------------------------

def read_photo(path, mode="L"):
    """A photo file -> uint8 (H, W) grey, or (H, W, 3) with mode "RGB", upright as its EXIF
    orientation says."""
    from PIL import Image, ImageOps
    path = pathlib.Path(path)
    if path.is_dir():
        raise TranslateError(f"{path}: is a folder; give a photo file (JPEG, PNG, ...)")
    if not path.is_file():
        raise TranslateError(f"{path}: no such file")
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            # grey_pixels scales 16-bit greys rather than clipping them to white
            return grey_pixels(upright) if mode == "L" else np.asarray(upright.convert(mode))
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


def face_square(box, margin=FER_MARGIN):
    """(left, top, side) of the square `margin` x the box's side, centred on the box."""
    x, y, w, h = box
    side = max(1, round(margin * max(w, h)))
    return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), side


def crop_face(grey, box, margin=FER_MARGIN):
    """The square `margin` x the box's side, centred on the box, resized to 48x48 uint8."""
    left, top, side = face_square(box, margin)
    height, width = grey.shape
    pad = max(0, -left, -top, left + side - width, top + side - height)
    if pad:  # the square leaves the photo: repeat its edge pixels (FER2013 has no black borders)
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = grey[top + pad:top + pad + side, left + pad:left + pad + side]
    return cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)


def centre_box(grey):
    """The centred square of an image that already is a face crop, as a box (x, y, w, h)."""
    height, width = grey.shape
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


def find_faces(image, all_faces=False, no_detect=False):
    """The squares (left, top, side) and FER2013-framed 48x48 uint8 crops of the faces in a BGR or
    grey image: the largest face, or all of them (largest first) with `all_faces`; with `no_detect`
    the image already is a face crop and its centred square is the face. ([], []) when none is found."""
    grey = _grey(image)
    if no_detect:
        boxes, margin = [centre_box(grey)], 1.0
    else:
        boxes, margin = detect_faces(grey)[:None if all_faces else 1], FER_MARGIN
    return [face_square(box, margin) for box in boxes], [crop_face(grey, box, margin) for box in boxes]


def paste_back(photo, face, translated, square):
    """`photo` (H, W, 3 RGB or H, W grey uint8) with the face in `square` (left, top, side) given the
    translation's expression.

    The generator sees 48 pixels a side, so pasting its output would blur a larger face: only the
    change (translation minus the 48x48 input, scaled up) is added, under a soft oval mask. It is
    added to R, G and B alike, which moves brightness by that much and keeps the colour.
    """
    left, top, side = square
    change = cv2.resize(translated.astype(np.float32) - face.astype(np.float32), (side, side),
                        interpolation=cv2.INTER_CUBIC)
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (side // 2, side // 2), (int(side * 0.40), int(side * 0.48)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(side / 16, 0.5))
    height, width = photo.shape[:2]
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + side, height), min(left + side, width)
    delta = np.rint(mask * change)[y0 - top:y1 - top, x0 - left:x1 - left]
    result = photo.copy()
    region = result[y0:y1, x0:x1].astype(np.float32)
    result[y0:y1, x0:x1] = np.clip(region + (delta[..., None] if photo.ndim == 3 else delta), 0, 255)
    return result


def load_generator(run_dir):
    """The trained generator of a T1/T2/T3 run folder; TranslateError, one line, when it is missing or broken."""
    try:  # loads Keras: only once the photo is known to hold a face
        return run_folder.load_translator(run_dir)
    except run_folder.RunFolderError as err:
        raise TranslateError(str(err)) from None


def translate_faces(translator, faces):
    """uint8 faces (N, 48, 48) -> uint8 (N, 7, 48, 48): every face in every emotion, one batch."""
    columns = grids.to_every_emotion(translator.translate, to_float(np.asarray(faces, np.uint8)))
    return to_uint8(np.stack(columns, axis=1)).reshape(len(faces), NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE)


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


def photo_paths(names):
    """The photos named: files as given, and each folder's image files in name order."""
    paths = []
    for name in map(pathlib.Path, names):
        if name.is_dir():
            paths += sorted(path for path in name.iterdir() if path.is_file()
                            and path.suffix.lower() in PHOTO_SUFFIXES and not path.name.startswith("."))
        else:
            paths.append(name)
    return paths


def read_faces(path, all_faces=False, no_detect=False):
    """The squares (left, top, side) and 48x48 crops of a photo's faces; TranslateError if none."""
    squares, faces = find_faces(read_photo(path), all_faces, no_detect)
    if not faces:
        raise TranslateError(f"{path}: no face found (the detector needs a frontal, upright "
                             "face; for an already-cropped face pass --no_detect)")
    return squares, faces


def write_results(path, grid, name, squares, faces, translations, args, per_emotion=None):
    """The grid; with --per_emotion the 48x48 PNGs; with --paste_back <name>_<emotion>.png beside
    the grid: the photo with every face given that emotion."""
    write_grid(grid, faces, translations, title=f"{path.name} -> {pathlib.Path(args.generator).name}")
    if per_emotion:
        write_per_emotion(per_emotion, faces, translations)
    if args.paste_back:
        from PIL import Image
        photo = read_photo(path, "RGB")
        for label, emotion in enumerate(EMOTIONS):
            result = photo
            for square, face, row in zip(squares, faces, translations):
                result = paste_back(result, face, row[label], square)
            with atomic.replacing(grid.parent / f"{name}_{emotion.lower()}.png") as temporary:
                Image.fromarray(result).save(temporary, format="PNG")


def translate_one(args):
    """One photo, as ever: any problem is an error."""
    path = pathlib.Path(args.photos[0])
    out = check_image_name(args.out or f"{path.stem}_emotions.png")  # before any work
    squares, faces = read_faces(path, args.all_faces, args.no_detect)
    translations = translate_faces(load_generator(args.generator), faces)
    write_results(path, out, path.stem, squares, faces, translations, args, args.per_emotion)
    print(f"{len(faces)} face{'s' if len(faces) > 1 else ''} -> {out}"
          + (f" and {args.per_emotion}/" if args.per_emotion else ""))


def translate_many(args):
    """Several photos or folders: faces batched through the generator, bad photos skipped."""
    paths, out_dir = photo_paths(args.photos), pathlib.Path(args.out or ".")
    if out_dir.exists() and not out_dir.is_dir():
        raise TranslateError(f"{out_dir}: not a folder (with several photos or a folder, --out is a folder)")
    if not args.no_detect:
        face_detector()  # no detector is an error for every photo, not a reason to skip one
    translator, names, skipped, photos, face_count = None, set(), 0, 0, 0
    for start in range(0, len(paths), PHOTOS_PER_BATCH):
        batch = []
        for path in paths[start:start + PHOTOS_PER_BATCH]:
            try:
                batch.append((path, *read_faces(path, args.all_faces, args.no_detect)))
            except TranslateError as err:
                print(f"skipped: {err}", file=sys.stderr)
                skipped += 1
        if not batch:
            continue
        translator = translator or load_generator(args.generator)
        translations = translate_faces(translator, [face for _, _, faces in batch for face in faces])
        for path, squares, faces in batch:
            name = next(candidate for candidate in itertools.chain(
                [path.stem], (f"{path.stem}_{i}" for i in itertools.count(2)))
                if candidate not in names)  # two folders may hold the same file name
            names.add(name)
            write_results(path, out_dir / f"{name}_emotions.png", name, squares, faces,
                          translations[face_count:face_count + len(faces)], args,
                          args.per_emotion and pathlib.Path(args.per_emotion) / name)
            face_count, photos = face_count + len(faces), photos + 1
    if not photos:
        raise TranslateError(f"{', '.join(args.photos)}: no photo translated ({skipped} skipped)")
    print(f"{face_count} face{'s' if face_count > 1 else ''} in {photos} photo{'s' if photos > 1 else ''} "
          f"-> {out_dir}/" + (f"; {skipped} skipped" if skipped else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("photos", nargs="+", help="JPEG/PNG photos (colour or grey, any size) or folders of them")
    parser.add_argument("--generator", default=str(DEFAULT_GENERATOR),
                        help="run folder of a trained T1/T2/T3 generator (default: saved_models/pretrained)")
    parser.add_argument("--out", help="one photo: the grid PNG (default: <photo name>_emotions.png here); "
                                      "several photos or a folder: the output folder (default: here)")
    parser.add_argument("--all_faces", action="store_true", help="every face found, not only the largest")
    parser.add_argument("--no_detect", action="store_true",
                        help="the image is already a cropped face: grey, centred square, 48x48")
    parser.add_argument("--per_emotion", metavar="DIR",
                        help="also write face<i>_<emotion>.png (48x48) into DIR (several photos: DIR/<name>/)")
    parser.add_argument("--paste_back", action="store_true",
                        help="also write <name>_<emotion>.png: the photo with the translated face blended in")
    args = parser.parse_args(argv)
    try:
        if len(args.photos) == 1 and not pathlib.Path(args.photos[0]).is_dir():
            translate_one(args)
        else:
            translate_many(args)
    except (TranslateError, DetectorError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
