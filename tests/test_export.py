"""Tests for dcgan_tf.export: the SavedModel loads where dcgan_tf cannot be imported and matches the checkpoint."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from run_factory import make_run

from dcgan_tf.export import EXPORT_JSON, export_generator
from dcgan_tf.generate import use_trained_model
from dcgan_tf.runs import load_run
from dcgan_tf.sampling import Sampler

SIZE = 8
Z_DIM = 8

# Runs in a fresh interpreter (-I: no PYTHONPATH, no user site, no script folder) that cannot import dcgan_tf or
# Keras (the package is installed editable, so it is blocked explicitly), then loads each export and saves what
# it generates.
CONSUMER = textwrap.dedent("""
    import sys
    sys.modules["dcgan_tf"] = None
    sys.modules["keras"] = None
    try:
        import dcgan_tf  # noqa: F401
        sys.exit("dcgan_tf is importable")
    except ImportError:
        pass
    import json
    import numpy as np
    import tensorflow as tf

    for name in sys.argv[1:]:
        m = tf.saved_model.load(name)
        meta = {k: v.numpy() for k, v in m.signatures["metadata"]().items()}
        meta = {k: v.decode() if isinstance(v, bytes) else v.item() for k, v in meta.items()}
        with open(name + "/dcgan_tf_export.json") as f:
            assert json.load(f)["z_dim"] == meta["z_dim"]
        serve = m.signatures["serving_default"]
        outputs = {}
        for batch in (3, 5):  # a free batch dimension
            z = tf.constant(np.load(name + ".z.npy")[:batch])
            inputs = {"z": z}
            if meta["y_dim"]:
                inputs["labels"] = tf.one_hot(np.arange(batch) % meta["y_dim"], meta["y_dim"])
            outputs[f"b{batch}"] = serve(**inputs)["images"].numpy()
        np.savez(name + ".out.npz", **outputs)
        with open(name + ".meta.json", "w") as f:
            json.dump(meta, f)
""")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{conditional: (sampler, export_dir)} for both kinds of generator."""
    root = tmp_path_factory.mktemp("export")
    result = {}
    for conditional in (False, True):
        cfg, paths, _, _ = make_run(root / f"run{int(conditional)}", conditional=conditional, size=SIZE,
                                    c_dim=1 if conditional else 3, z_dim=Z_DIM, z_dist="normal01")
        sampler = Sampler.from_run(load_run(paths.checkpoint_dir, cfg), batch_size=4)
        export_dir = export_generator(sampler, str(root / f"export{int(conditional)}"), source={"step": 0})
        np.save(export_dir + ".z.npy", np.random.default_rng(0).normal(size=(5, Z_DIM)).astype(np.float32))
        result[conditional] = sampler, export_dir
    return result


def test_export_folder_and_metadata(exports):
    for conditional, (_, export_dir) in exports.items():
        assert {"saved_model.pb", "variables", EXPORT_JSON} <= set(os.listdir(export_dir))
        with open(os.path.join(export_dir, EXPORT_JSON)) as f:
            meta = json.load(f)
        assert meta["z_dim"] == Z_DIM and meta["z_dist"] == "normal01" and meta["z_range"] == [-2.0, 2.0]
        assert meta["y_dim"] == (10 if conditional else 0) and meta["value_range"] == [-1.0, 1.0]
        assert (meta["height"], meta["width"], meta["channels"]) == (SIZE, SIZE, 1 if conditional else 3)
        assert sorted(meta["inputs"]) == (["labels", "z"] if conditional else ["z"]) and meta["step"] == 0


@pytest.mark.slow
def test_export_loads_without_dcgan_tf_and_matches_the_checkpoint(exports, tmp_path):
    dirs = [exports[c][1] for c in (False, True)]
    result = subprocess.run([sys.executable, "-I", "-c", CONSUMER, *dirs], cwd=tmp_path, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    for conditional in (False, True):
        sampler, export_dir = exports[conditional]
        z = np.load(export_dir + ".z.npy")
        expected = sampler(z, sampler.labels(len(z)))  # labels i % 10, as the consumer's
        outputs = np.load(export_dir + ".out.npz")
        assert outputs["b3"].shape == (3, SIZE, SIZE, 1 if conditional else 3)
        np.testing.assert_allclose(outputs["b5"], expected, atol=1e-4)
        np.testing.assert_allclose(outputs["b3"], expected[:3], atol=1e-4)
        with open(export_dir + ".meta.json") as f:
            meta = json.load(f)
        assert meta == {"z_dim": Z_DIM, "z_dist": "normal01", "z_min": -2.0, "z_max": 2.0,
                        "y_dim": 10 if conditional else 0, "height": SIZE, "width": SIZE,
                        "channels": 1 if conditional else 3}


@pytest.mark.slow
def test_export_replaces_a_previous_one_and_leaves_no_temporary_folders(tmp_path):
    cfg, paths, _, _ = make_run(tmp_path, size=SIZE, z_dim=Z_DIM)
    [first] = use_trained_model(cfg, export=True)
    assert first == os.path.join(paths.checkpoint_dir, "export")
    with open(os.path.join(first, "stale"), "w"):
        pass
    [again] = use_trained_model(cfg, export=True)
    assert again == first and "stale" not in os.listdir(again)
    assert sorted(os.listdir(paths.checkpoint_dir)) == sorted(
        ["FLAGS.json", "checkpoint", "ckpt-0.data-00000-of-00001", "ckpt-0.index", "export"])
    [elsewhere] = use_trained_model(cfg, export=True, export_dir=str(tmp_path / "mine"))
    assert elsewhere == str(tmp_path / "mine") and os.path.exists(os.path.join(elsewhere, "saved_model.pb"))
