"""The one exception type for problems a user can fix: the CLI prints its message as one line, exit code 2."""


class BenchError(Exception):
    """A user-facing error: the message says what was wrong and what to do about it."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
