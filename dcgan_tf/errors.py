"""User-facing errors: one line that names the flag or file at fault and what to do."""


class DcganError(Exception):
    """An error the user caused and can fix; the CLI prints it as one line, without a traceback."""


class FlagError(DcganError):
    """A flag has a bad value, or disagrees with the data or a saved run."""

    def __init__(self, flag: str, message: str):
        self.flag = flag
        super().__init__(f"--{flag}: {message}")
