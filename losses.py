"""Loss terms shared by the experiment scripts; each experiment's own losses live in its script."""
import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
from keras import ops

from data_loader import NUM_CLASSES


def emotion_loss(logits, labels=None):
    """D's emotion head: independent sigmoids against one-hot `labels`, or against "no emotion"
    (all zeros) when `labels` is None -- how the original code's D saw translations.

    Summed over the 7 emotions, averaged over faces (the scale of a softmax cross-entropy).
    """
    targets = ops.zeros_like(logits) if labels is None else ops.one_hot(labels, NUM_CLASSES)
    return NUM_CLASSES * ops.mean(ops.binary_crossentropy(targets, logits, from_logits=True))


def bce(logits, is_real):
    """The log-likelihood adversarial loss of real/fake logits (binary cross-entropy), averaged."""
    target = ops.ones_like(logits) if is_real else ops.zeros_like(logits)
    return ops.mean(ops.binary_crossentropy(target, logits, from_logits=True))
