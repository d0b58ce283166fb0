"""Export a trained generator for deployment: one graph, (face, target emotion) -> face.

    python export.py saved_models/pretrained --format onnx --out ccyclegan.onnx
    python export.py saved_models/t2 --format savedmodel --out exported/t2_savedmodel
    python export.py saved_models/t2 --format litert --out ccyclegan.tflite

The graph has two inputs, `face` float32 (N, 48, 48, 1), grey in [-1, 1] (pixel / 127.5 - 1), and
`target_emotion` int32 (N,) in 0..6 (Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral), and one
output, the translated faces float32 (N, 48, 48, 1) in [-1, 1]; N is free. T2's two networks
(g_enc, g_dec) become one graph. It is written with Keras' `Model.export`: ONNX through tf2onnx
(run it with onnxruntime), a TensorFlow SavedModel (endpoint `serve`), or a LiteRT `.tflite` file.
Bad input (no run folder, an unfinished run, an output that exists) stops with one `error: ...`
line, exit status 2, and nothing is written.
"""
import argparse
import contextlib
import io
import os
import pathlib
import shutil
import sys
import tempfile
import warnings

import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras
import numpy as np

import run_folder
from data_loader import IMAGE_SIZE

FORMATS = {"onnx": "onnx", "savedmodel": "tf_saved_model", "litert": "litert"}  # ours -> Keras' name


class ExportError(ValueError):
    """Bad input; reported as one `error: ...` line, exit status 2."""


def deployable_generator(run_dir):
    """The run's generator as one functional model [face, target_emotion] -> face, inputs named."""
    try:
        translator = run_folder.load_translator(run_dir)
    except run_folder.RunFolderError as err:
        raise ExportError(str(err)) from None
    face = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    target = keras.Input((), dtype="int32", name="target_emotion")
    model = keras.Model([face, target], translator.experiment.translate(translator.nets, face, target),
                        name="ccyclegan_generator")
    model([np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32), np.zeros((1,), np.int32)])  # ONNX export wants a called model
    return model


def onnx_output_padding(path):
    """Rewrite, in place, tf2onnx's ConvTranspose nodes with negative end pads as output_padding.

    tf2onnx writes a transposed conv with output_padding (T2's 10x10 -> 23x23 layer) as negative
    end pads, which ONNX forbids: onnxruntime refuses to load the file. Zero end pads plus
    output_padding is the same layer in ONNX's words.
    """
    import onnx
    model = onnx.load(str(path))
    for node in model.graph.node:
        pads = next((a for a in node.attribute if a.name == "pads"), None)
        if node.op_type != "ConvTranspose" or pads is None or min(pads.ints) >= 0:
            continue
        half = len(pads.ints) // 2
        begin, end = list(pads.ints[:half]), list(pads.ints[half:])
        if min(begin) < 0 or max(end) > 0:
            raise ExportError(f"{path}: {node.name}: pads {list(pads.ints)} have no ONNX equivalent")
        pads.ints[:] = begin + [0] * half
        node.attribute.append(onnx.helper.make_attribute("output_padding", [-p for p in end]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export(run_dir, fmt, out):
    """Write the run's generator to `out` (a file; a folder for savedmodel), all or nothing."""
    out = pathlib.Path(out)
    if out.exists():
        raise ExportError(f"{out}: already exists; remove it or choose another --out")
    model = deployable_generator(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Export beside the target, then rename: a failed export leaves nothing at `out`.
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=out.parent))
    try:
        # tf2onnx's and TF's converter chatter; Keras' numpy-2 patch for tf2onnx warns by design
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(staging / out.name), format=FORMATS[fmt], verbose=False)
        if fmt == "onnx":
            onnx_output_padding(staging / out.name)
        os.replace(staging / out.name, out)
    except ImportError as err:
        raise ExportError(f"{out}: the {fmt} export needs a package that is not installed "
                          f"({str(err).splitlines()[0]})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="run folder of a finished T1/T2/T3 training (saved_models/<run>)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="onnx", help="default: onnx")
    parser.add_argument("--out", required=True,
                        help="the file to write (.onnx, .tflite) or, for savedmodel, the folder")
    args = parser.parse_args(argv)
    try:
        run_folder.experiment_of(args.run_dir)  # a run of a known experiment, before any model is built
        out = export(args.run_dir, args.format, args.out)
    except (ExportError, run_folder.RunFolderError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.format}: {args.run_dir} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
