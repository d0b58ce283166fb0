"""demo.py end to end through its HTTP API (gradio_client), on 127.0.0.1; skipped without Gradio."""
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

gradio = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

import demo  # noqa: E402
from data_loader import EMOTIONS  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(tiny_generator):
    """demo.py's command line serving on a free loopback port; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(REPO / "demo.py"), "--generator", str(tiny_generator),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_api_returns_the_crop_and_seven_expressions(served):
    client = gradio_client.Client(served, verbose=False)
    crop, gallery = client.predict(gradio_client.handle_file(str(demo.EXAMPLE_PHOTO)), False,
                                   api_name="/expressions")
    with Image.open(crop) as image:
        assert image.size == (demo.SHOWN_SIDE, demo.SHOWN_SIDE)
    assert [item["caption"] for item in gallery] == list(EMOTIONS)
    assert all(pathlib.Path(item["image"]).is_file() for item in gallery)


def test_a_photo_without_a_face_is_a_message_not_a_crash(served, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 160), (200, 200, 200)).save(blank)
    client = gradio_client.Client(served, verbose=False)
    with pytest.raises(Exception, match="No face found"):
        client.predict(gradio_client.handle_file(str(blank)), False, api_name="/expressions")
