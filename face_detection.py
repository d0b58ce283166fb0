"""Faces in grey images: OpenCV's frontal-face Haar cascade, and the rule that picks clean photographs.

FER2013 holds drawings, cut-outs on white, faces in profile or behind hands, and frames whose
contrast was stretched until large areas clip to white. Sample grids show one face per emotion;
`looks_like_photo` is the written rule that keeps those out, so a reader judges the generator on
real, frontal, well-exposed photographs.
"""
import os
import threading

import cv2
import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"
DETECT_MAX_SIDE = 1024   # photos are shrunk to this for detection only (speed); crops use full size
# The photo rule's thresholds, from PublicTest's distributions (3,589 faces): every FER2013 frame
# clips about 2 % of its pixels to 255 (median 4.8 %); drawings, posterised and cut-out faces have
# long runs of equal neighbours (median 3.9 %; photographs up to about 8 %, drawings mostly above
# 18 %), fewer grey levels (median 251) and a white border.
MAX_CLIPPED = 0.03       # fraction of pixels at >= 250
MAX_FLAT = 0.08          # fraction of horizontal neighbours with the same value
MIN_GREY_LEVELS = 200    # distinct values among the 2,304 pixels
MEAN_RANGE = (70, 190)   # neither under- nor over-exposed
MAX_WHITE_BORDER = 0.05  # fraction of the 3-pixel border at >= 240
DETECT_SCALE = 4         # a 48x48 face is enlarged for the detector, which wants >= 24 px windows


class DetectorError(ValueError):
    """OpenCV cannot detect faces here (no Haar cascade); one line for the user."""


# One loaded cascade per thread: loading the XML costs milliseconds per call, and
# CascadeClassifier.detectMultiScale mutates the classifier, so threads (the Gradio demo's) must not
# share one (opencv/opencv#4287).
_per_thread = threading.local()


def face_detector():
    """This thread's frontal-face cascade, loaded on first use."""
    if not hasattr(cv2, "CascadeClassifier"):
        raise DetectorError(f"OpenCV {cv2.__version__} has no Haar cascade face detector (OpenCV 5 "
                            "dropped it): pip install 'opencv-python-headless<5', or pass --no_detect")
    if getattr(_per_thread, "detector", None) is None:
        detector = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, CASCADE))
        if detector.empty():
            raise DetectorError(f"{cv2.data.haarcascades}{CASCADE}: OpenCV's face cascade is missing")
        _per_thread.detector = detector
    return _per_thread.detector


def detect_faces(grey, min_side=24):
    """Boxes (x, y, w, h) of the frontal faces in a grey uint8 image, largest first."""
    scale = min(1.0, DETECT_MAX_SIDE / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    boxes = face_detector().detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4) / scale
    return sorted((tuple(map(float, box)) for box in boxes), key=lambda box: -box[2] * box[3])


def looks_like_photo(face):
    """Whether a 48x48 grey uint8 face is a clean photograph of one frontal face: well exposed,
    little clipping, no flat drawn areas, no white surround, and the detector finds exactly one
    face filling at least half the frame's side."""
    pixels = face.astype(np.float32)
    border = np.concatenate([face[:3].ravel(), face[-3:].ravel(), face[:, :3].ravel(), face[:, -3:].ravel()])
    if not (np.mean(pixels >= 250) <= MAX_CLIPPED
            and np.mean(np.diff(pixels, axis=1) == 0) <= MAX_FLAT
            and len(np.unique(face)) >= MIN_GREY_LEVELS
            and MEAN_RANGE[0] <= pixels.mean() <= MEAN_RANGE[1]
            and np.mean(border >= 240) <= MAX_WHITE_BORDER):
        return False
    side = face.shape[0] * DETECT_SCALE
    enlarged = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return len(detect_faces(enlarged, min_side=side // 2)) == 1
