"""examples/quickstart.ipynb runs top to bottom in a Jupyter kernel of this Python, and is committed clean.

The test runs it as a user would (nbclient, the notebook's folder as the working directory) with its first code
cell, the parameters, shortened to one training step and a few completion updates, its files in a temporary
folder. A cell appended after the notebook's own reports what the test checks: the kernel's Python, the hole of
the completions and the loaded run's images.
"""

from __future__ import annotations

import ast
import json
import os
import sys

import nbclient  # the test extras install it: a missing runner fails here, it does not skip
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "examples", "quickstart.ipynb")
FACTS = "FACTS "  # the appended cell's printed line


def short_parameters(tmp_path) -> dict[str, object]:
    """The parameter cell's values for a run of seconds: one training step, tiny completions."""
    return {"MINUTES": 1e-4, "EPOCHS": 1, "DATA_DIR": os.path.join(ROOT, "data"), "OUT_DIR": str(tmp_path),
            "MODEL_DIM": 4, "FC_DIM": 16, "PER_CLASS": 2, "N_COMPLETE": 3, "N_ITER": 10}


# Printed by a cell appended to the notebook: what the notebook made, for the test to check.
REPORT = f"""
import json, sys
hole = done.masks[..., 0] < 0.5  # [N, H, W]
print({FACTS!r} + json.dumps({{
    "executable": sys.executable,
    "samples_shape": list(samples.shape),
    "hole_pixels": int(hole.sum()),
    "hole_changed": float((done.images[..., 0] != masked[..., 0])[hole].mean()),
    "known_kept": bool((done.images[..., 0] == originals[..., 0])[~hole].all()),
    "labels": done.labels.tolist(),
    "shapes": [list(run.generate(3, seed=1).shape), list(again.generate(3, seed=1).shape)],
    "same_images": bool((run.generate(3, seed=1) == again.generate(3, seed=1)).all()),
}}))
"""


def parameter_cell(nb) -> nbformat.NotebookNode:
    cell = next(c for c in nb.cells if c.cell_type == "code")
    assert cell.source.startswith("# Parameters"), "the notebook's first code cell holds its parameters"
    return cell


def assigned_names(source: str) -> set[str]:
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets}


@pytest.mark.slow  # 15-35 s on 2 busy cores: a kernel process, TensorFlow's import, one compiled train step
def test_the_notebook_runs_and_shows_its_images(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = parameter_cell(nb)
    short = short_parameters(tmp_path)
    assert assigned_names(cell.source) == set(short), "the test shortens every parameter"
    cell.source += "\n# tests/test_notebook.py: seconds, not minutes\n" + "".join(
        f"{name} = {value!r}\n" for name, value in short.items())
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))

    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=170, allow_errors=False,
                                     resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
    client.execute()  # CellExecutionError names the failing cell and its traceback

    outputs = [out for c in nb.cells if c.cell_type == "code" for out in c.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert not [out.text for out in outputs if out.get("name") == "stderr"], "TensorFlow's chatter is hidden"
    pngs = [c for c in nb.cells[:-1] if c.cell_type == "code"
            and any("image/png" in out.get("data", {}) for out in c.outputs)]
    assert len(pngs) == 3, "the class grid, the completions and the interpolation are shown as images"
    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs)
    facts = json.loads(printed.split(FACTS, 1)[1])
    assert os.path.realpath(facts["executable"]) == os.path.realpath(sys.executable), "the kernel runs this Python"
    assert facts["samples_shape"] == [10 * 2, 28, 28, 1]  # PER_CLASS images of every class
    assert facts["hole_pixels"] == 3 * 14 * 14  # the centre hole: rows and columns 7..20 of 28
    assert facts["hole_changed"] > 0.9, "the completion fills the hole with something other than the grey input"
    assert facts["known_kept"], "the known pixels are the input's"
    assert len(facts["labels"]) == 3 and all(0 <= label < 10 for label in facts["labels"])  # chosen, label-free
    assert facts["shapes"] == [[3, 28, 28, 1]] * 2 and facts["same_images"]
    assert os.path.isdir(tmp_path / "checkpoints" / "fm_quickstart")  # the run was written where it was told


def test_the_committed_notebook_is_clean():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"clear the outputs of: {cell.source[:60]}"
    parameter_cell(nb)
