"""Errors a user can cause. The CLI prints them as one line and exits non-zero; anything else is a bug."""


class ReglabError(Exception):
    """Base class: a problem with the user's input or environment, explained in one line."""


class ConfigError(ReglabError):
    """An invalid experiment setting (flag, TOML preset)."""


class DataError(ReglabError):
    """A dataset that cannot be found, read, or trusted."""


class RunDirError(ReglabError):
    """A run directory that cannot be created, read, or is not reglab's."""


class RunInterrupted(ReglabError):
    """Ctrl-C or SIGTERM during a run: the record is closed consistently; the message says where it is."""

    def __init__(self, message: str, signum: int | None = None) -> None:
        super().__init__(message)
        self.signum = signum


class RunFailed(ReglabError):
    """The machine failed the run (a full disk, a read-only directory): what was finished is kept and resumable."""
