"""User-facing errors name the flag."""

from dcgan_tf.errors import DcganError, FlagError


def test_flag_error_names_the_flag():
    e = FlagError("input_height", "is larger than the images (64 > 16)")
    assert isinstance(e, DcganError) and e.flag == "input_height"
    assert str(e) == "--input_height: is larger than the images (64 > 16)"
