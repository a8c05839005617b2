"""The progress line: counts, bar and values; one line per update off a terminal."""

import io

from dcgan_tf.progress import ProgressBar


def test_progress_lines_off_a_terminal():
    out = io.StringIO()
    bar = ProgressBar(10, prefix="epoch 1/2 ", width=10, stream=out)
    bar.update(5, {"img/s": 123.456, "g_loss": 0.5})
    bar.update(10, {"img/s": 100.0})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2 5/10 [=====.....]") and "img/s 123.5" in lines[0]
    assert "g_loss 0.5" in lines[0] and lines[1].startswith("epoch 1/2 10/10 [==========]")
