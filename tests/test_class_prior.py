"""Tests of dcgan_tf.class_prior: where the classifier of the class choice is found and what it learnt."""

import json

from dcgan_tf.class_prior import find_classifier, trained_on_holes


def test_classifier_is_found_next_to_the_run(tmp_path):
    run = tmp_path / "checkpoints" / "fm_heldout"
    run.mkdir(parents=True)
    assert find_classifier(str(run), "fashion_mnist") is None
    folder = tmp_path / "checkpoints" / "classifier_fashion_mnist"
    folder.mkdir()
    (folder / "classifier.json").write_text(json.dumps({}))
    assert find_classifier(str(run), "fashion_mnist") == str(folder)
    assert find_classifier(str(run) + "/", "fashion_mnist") == str(folder)
    assert find_classifier(str(run), "mnist") is None
    masked = tmp_path / "checkpoints" / "classifier_fashion_mnist_masked"
    masked.mkdir()
    assert find_classifier(str(run), "fashion_mnist") == str(folder)  # an empty folder is no classifier
    (masked / "classifier.json").write_text(json.dumps({}))
    assert find_classifier(str(run), "fashion_mnist") == str(masked)  # the --mask_augment one first


def test_trained_on_holes_reads_the_saved_settings(tmp_path):
    for name, metadata in (("holes", {"mask_augment": 0.8}), ("plain", {"mask_augment": 0.0}), ("old", {})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "classifier.json").write_text(json.dumps({"metadata": metadata}))
    assert trained_on_holes(str(tmp_path / "holes"))
    assert not trained_on_holes(str(tmp_path / "plain")) and not trained_on_holes(str(tmp_path / "old"))
    assert not trained_on_holes(str(tmp_path / "missing"))
