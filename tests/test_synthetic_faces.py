"""synthetic_faces.py: deterministic FER2013-format faces whose seven expressions a small CNN
separates, with identities a generator can keep while it changes the expression."""
import numpy as np
import pytest

import synthetic_faces
from data_loader import NUM_CLASSES, load_fer2013, to_float


def mean_abs_diff(a, b):
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def test_faces_are_deterministic_in_the_seed():
    labels = np.arange(14) % NUM_CLASSES
    assert np.array_equal(synthetic_faces.draw_faces(labels, seed=3),
                          synthetic_faces.draw_faces(labels, seed=3))
    assert not np.array_equal(synthetic_faces.draw_faces(labels, seed=3),
                              synthetic_faces.draw_faces(labels, seed=4))
    images, labels = synthetic_faces.make_synthetic(5, seed=2)
    again, labels_again = synthetic_faces.make_synthetic(5, seed=2)
    assert np.array_equal(images, again) and np.array_equal(labels, labels_again)


def test_make_synthetic_has_fer2013_format_and_every_class():
    images, labels = synthetic_faces.make_synthetic(6, seed=0)
    assert images.shape == (42, 48, 48) and images.dtype == np.uint8
    assert labels.shape == (42,) and np.issubdtype(labels.dtype, np.integer)
    assert np.array_equal(np.bincount(labels, minlength=NUM_CLASSES), np.full(NUM_CLASSES, 6))
    assert not np.array_equal(labels, np.sort(labels)), "faces should come shuffled"
    # the faces use the grey range: dark features and background, light skin
    assert images.min() < 40 and images.max() > 200


def test_faces_of_one_expression_vary_from_sample_to_sample():
    faces = synthetic_faces.draw_faces(np.full(50, 3), seed=0)
    pairs = [mean_abs_diff(faces[i], faces[i + 1]) for i in range(49)]
    assert min(pairs) > 3.0
    # position varies: the bright face's centroid moves by pixels, not fractions of one
    weights = faces.astype(np.float64) - faces.mean(axis=(1, 2), keepdims=True)
    weights = np.clip(weights, 0, None)
    columns = (weights.sum(axis=1) * np.arange(48)).sum(axis=1) / weights.sum(axis=(1, 2))
    assert columns.std() > 0.8


def test_identity_depends_on_the_seed_not_on_the_expression():
    """Face i of one seed is the same person under every label: a ground-truth translation."""
    happy = synthetic_faces.draw_faces(np.full(40, 3), seed=5)
    sad = synthetic_faces.draw_faces(np.full(40, 4), seed=5)
    other_people = synthetic_faces.draw_faces(np.full(40, 3), seed=6)
    same_person = np.mean([mean_abs_diff(h, s) for h, s in zip(happy, sad)])
    same_expression = np.mean([mean_abs_diff(h, o) for h, o in zip(happy, other_people)])
    assert same_person < 0.5 * same_expression
    assert same_person > 2.0, "the expressions themselves must differ"


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match="0..6"):
        synthetic_faces.draw_faces([0, 7])
    with pytest.raises(ValueError, match="1-D integer"):
        synthetic_faces.draw_faces([0.5, 1.0])


def test_the_judge_separates_the_seven_expressions_on_unseen_faces(synthetic_judge):
    import classifier

    for seed in (0, 1):
        images, labels = synthetic_faces.make_synthetic(30, seed=seed)
        accuracy = np.mean(classifier.predict_labels(synthetic_judge, to_float(images)) == labels)
        assert accuracy >= 0.95, f"seed {seed}: judge accuracy {accuracy:.3f}"


def test_synthetic_csv_round_trips_through_the_data_loader(tmp_path):
    path = synthetic_faces.write_synthetic_csv(tmp_path / "faces.csv.gz", train_per_class=4,
                                               test_per_class=2, seed=7)
    data = load_fer2013(path, cache=False)
    assert sorted(data.splits) == ["PublicTest", "Training"]
    for split, (images, labels) in [("Training", synthetic_faces.make_synthetic(4, seed=7)),
                                    ("PublicTest", synthetic_faces.make_synthetic(2, seed=8))]:
        assert np.array_equal(data.split(split).images, images)
        assert np.array_equal(data.split(split).labels, labels)
