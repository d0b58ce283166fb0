"""Labelled grids of 48x48 faces as 8-bit grey PNGs: training samples and translate.py's output."""
import io
import pathlib

import numpy as np
import PIL.Image

import atomic
from data_loader import EMOTIONS, IMAGE_SIZE, NUM_CLASSES

GAP = 2  # white pixels between faces


def write_grid(path, columns, column_names, row_names, title=""):
    """Write a PNG where `columns[c][r]` (a float face in [-1, 1]) sits in row r, column c, with the
    column names on top and the row names on the left; returns the path."""
    from matplotlib.figure import Figure
    step = IMAGE_SIZE + GAP
    mosaic = np.ones((len(row_names) * step, len(columns) * step), np.float32)
    for col, column in enumerate(columns):
        for row, image in enumerate(np.asarray(column).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)):
            mosaic[row * step:row * step + IMAGE_SIZE, col * step:col * step + IMAGE_SIZE] = image
    height, width = mosaic.shape[0] / 60, mosaic.shape[1] / 60   # inches at 60 px per inch
    fig = Figure(figsize=(width + 0.8, height + 0.6), dpi=100)
    ax = fig.add_axes((0.7 / (width + 0.8), 0.02, width / (width + 0.8), height / (height + 0.6)))
    ax.imshow(mosaic, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    centres = lambda count: [i * step + IMAGE_SIZE / 2 for i in range(count)]  # noqa: E731
    ax.set_xticks(centres(len(columns)), column_names, fontsize=8)
    ax.set_yticks(centres(len(row_names)), row_names, fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_frame_on(False)
    fig.suptitle(title, fontsize=9, x=0.02, y=0.99, ha="left")
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png")
    # Everything is grey: an 8-bit grey PNG is a quarter of matplotlib's RGBA one.
    with atomic.replacing(path) as temporary:
        PIL.Image.open(rendered).convert("L").save(temporary, optimize=True)
    return pathlib.Path(path)


def to_every_emotion(function, faces):
    """`function(images, targets)` of every face for each of the seven emotions, in one call: seven
    columns, one per emotion."""
    targets = np.repeat(np.arange(NUM_CLASSES), len(faces))
    return np.split(np.asarray(function(np.tile(faces, (NUM_CLASSES, 1, 1, 1)), targets)), NUM_CLASSES)


def write_sample_grid(path, translator, faces, labels, title=""):
    """The sample grid of a generator (anything with `translate(images, targets)` and
    `reconstruct(images, labels)`): one row per face, columns the input, its translation to each
    of the seven emotions and its reconstruction; returns the path."""
    columns = [faces, *to_every_emotion(translator.translate, faces), translator.reconstruct(faces, labels)]
    return write_grid(path, columns, ["input", *EMOTIONS, "recon."], [EMOTIONS[int(label)] for label in labels],
                      title=title)
