"""What both command-line programs share: a user error is one `error: ...` line and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from dcgan_tf.errors import DcganError


def exit_with(run: Callable[[list[str]], int], argv: list[str]) -> None:
    """Calls run(argv) and exits with its code; a DcganError prints one line to stderr and exits 2."""
    try:
        code = run(argv)
    except DcganError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)
