"""User-facing errors: one line that names the flag or file at fault and what to do."""


class DcganError(Exception):
    """An error the user caused and can fix; the CLI prints it as one line, without a traceback."""


class FlagError(DcganError):
    """A flag has a bad value, or disagrees with the data or a saved run."""

    def __init__(self, flag: str, message: str):
        self.flag = flag
        super().__init__(f"--{flag}: {message}")


def check_choice(flag: str, value, choices) -> None:
    """FlagError unless value is one of choices."""
    if value not in choices:
        raise FlagError(flag, f"must be one of {', '.join(map(str, choices))}, got {value!r}")


def check_range(flag: str, value, ok: bool, what: str) -> None:
    """FlagError "must be <what>" unless ok (the caller's test of value)."""
    if not ok:
        raise FlagError(flag, f"must be {what}, got {value!r}")


def check_whole_numbers(obj, names, minimum: int = 1) -> None:
    """FlagError for the first attribute of obj in names that is not an int >= minimum."""
    for name in names:
        value = getattr(obj, name)
        check_range(name, value, isinstance(value, int) and value >= minimum, f"a whole number >= {minimum}")
