"""The progress lines: ProgressBar's format and `track` over batches."""

from __future__ import annotations

import io

from dcgan_tf.progress import ProgressBar, track


def test_progress_bar_format():
    line = ProgressBar(10, prefix="epoch 1/2 ", width=10).format(5, {"d_loss": 1.23456})
    assert line.startswith("epoch 1/2 5/10 [=====.....] ") and line.endswith("d_loss 1.235")


def test_track_yields_items_unchanged_and_reports_the_total():
    stream = io.StringIO()
    batches = [list(range(4)), list(range(4)), list(range(2))]
    seen = list(track(iter(batches), 10, prefix="generate ", stream=stream, every_s=3600))
    assert seen == batches
    lines = stream.getvalue().splitlines()
    assert lines == [lines[-1]] and lines[-1].startswith("generate 10/10 [")  # off a terminal: the end only


def test_track_reports_each_item_when_asked_every_time():
    stream = io.StringIO()
    list(track(iter([[1, 2], [3]]), 3, size=len, stream=stream, every_s=0))
    assert [line.split(" [")[0] for line in stream.getvalue().splitlines()] == ["2/3", "3/3"]


def test_off_a_terminal_updates_are_thinned_to_one_line_per_interval_and_the_last():
    stream = io.StringIO()
    bar = ProgressBar(100, prefix="batch 1/1 ", stream=stream, every_s=3600)
    for done in range(10, 101, 10):
        bar.update(done, {"loss": 1.0})
    assert [line.split(" [")[0] for line in stream.getvalue().splitlines()] == ["batch 1/1 100/100"]
    every = io.StringIO()
    bar = ProgressBar(3, stream=every)  # every_s 0: the training loop's bar, a line per update
    for done in (1, 2, 3):
        bar.update(done, {})
    assert len(every.getvalue().splitlines()) == 3
