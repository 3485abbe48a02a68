"""The one project exception: a one-line message the CLI prints without a traceback (exit status 2)."""


class HarnessError(Exception):
    """Bad input or an unrecoverable condition, described in one line naming the file/key and what was expected."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))
