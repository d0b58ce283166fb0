"""Web demo: a photo (upload or webcam) -> the detected 48x48 face -> the seven expressions.

    .venv/bin/pip install -r requirements-demo.txt     # Gradio: an optional extra
    .venv/bin/python demo.py                           # then open http://127.0.0.1:7860
    .venv/bin/python demo.py --generator saved_models/t2 --port 8000

It serves on 127.0.0.1 (this machine only) unless --host says otherwise, with Gradio's analytics
off; nothing is fetched from the internet. The page opens with an example photo (Grace Hopper's
portrait, which matplotlib ships) already translated. The face is found and cropped as
translate.py does it; tick "already a cropped face" for an image that is the face. Its HTTP API
(`/expressions`: image, already-cropped flag -> crop, gallery of seven) serves gradio_client.
"""
import argparse
import os
import pathlib
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported

import cv2  # noqa: E402
from matplotlib import cbook  # noqa: E402

import translate  # noqa: E402  (Keras loads with the generator, through run_folder)
from data_loader import EMOTIONS  # noqa: E402

EXAMPLE_PHOTO = pathlib.Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
EXAMPLE_FACE = translate.find_faces(translate.read_photo(EXAMPLE_PHOTO), no_detect=True)[1][0]
SHOWN_SIDE = 192  # the 48x48 faces are enlarged for the page (nearest: the pixels the generator sees)


def enlarged(face):
    return cv2.resize(face, (SHOWN_SIDE, SHOWN_SIDE), interpolation=cv2.INTER_NEAREST)


def build_app(generator_dir):
    """The Gradio Blocks app for the generator in `generator_dir` (loaded now, once)."""
    import gradio as gr
    translator = translate.load_generator(generator_dir)
    translate.translate_faces(translator, [EXAMPLE_FACE])  # traced now, so the first visitor does not wait

    def expressions(image, already_cropped):
        if image is None:
            raise gr.Error("Upload a photo or take one with the webcam first.")
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        _, faces = translate.find_faces(grey, no_detect=already_cropped)
        if not faces:
            raise gr.Error("No face found: the detector needs a frontal, upright face (or tick "
                           "'already a cropped face').")
        translations = translate.translate_faces(translator, faces)[0]
        return enlarged(faces[0]), [(enlarged(face), emotion) for face, emotion in zip(translations, EMOTIONS)]

    with gr.Blocks(title="CCycleGAN: one face, seven expressions") as app:
        gr.Markdown(f"# One face, seven expressions\nA photo in; the face the generator sees (48x48, grey) "
                    f"and that face as Angry, Disgust, Fear, Happy, Sad, Surprise and Neutral out. "
                    f"Generator: `{generator_dir}`.")
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.Image(value=str(EXAMPLE_PHOTO), sources=["upload", "webcam"], type="numpy",
                                 label="your photo")
                already_cropped = gr.Checkbox(label="already a cropped face (no detection)")
                button = gr.Button("Translate", variant="primary")
            with gr.Column(scale=2):
                crop = gr.Image(label="the face the generator sees (48x48)", height=SHOWN_SIDE, width=SHOWN_SIDE)
                gallery = gr.Gallery(label="seven expressions", columns=7, height="auto")
        button.click(expressions, [photo, already_cropped], [crop, gallery], api_name="expressions")
        app.load(expressions, [photo, already_cropped], [crop, gallery], api_name=False)
    return app


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default=str(translate.DEFAULT_GENERATOR),
                        help="run folder of a trained T1/T2/T3 generator (default: saved_models/pretrained)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("error: demo.py needs Gradio: .venv/bin/pip install -r requirements-demo.txt", file=sys.stderr)
        return 2
    try:
        app = build_app(args.generator)
    except translate.TranslateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    app.launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
