"""User-facing errors name the flag."""

from dcgan_tf.errors import DcganError, FlagError


def test_flag_error_names_the_flag():
    e = FlagError("input_height", "is larger than the images (64 > 16)")
    assert isinstance(e, DcganError) and e.flag == "input_height"
    assert str(e) == "--input_height: is larger than the images (64 > 16)"


def test_check_helpers_name_the_flag():
    import types

    import pytest

    from dcgan_tf.errors import check_choice, check_range, check_whole_numbers

    with pytest.raises(FlagError, match=r"^--loss: must be one of gan, lsgan, got 'x'$"):
        check_choice("loss", "x", ("gan", "lsgan"))
    with pytest.raises(FlagError, match=r"^--lr: must be > 0, got -1$"):
        check_range("lr", -1, -1 > 0, "> 0")
    obj = types.SimpleNamespace(epoch=3, batch_size=2.5, eval_freq=0)
    check_whole_numbers(obj, ("epoch",))
    check_whole_numbers(obj, ("eval_freq",), minimum=0)
    with pytest.raises(FlagError, match=r"^--batch_size: must be a whole number >= 1, got 2.5$"):
        check_whole_numbers(obj, ("epoch", "batch_size"))
