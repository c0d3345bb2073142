"""How long-running steps report to whoever drives them (the CLI renders; tests record)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, task: str, total: int | None) -> None: ...

    def advance(self, task: str, amount: int) -> None: ...

    def finish(self, task: str) -> None: ...

    def note(self, message: str) -> None: ...


class SilentProgress:
    """Reports nothing (library use, --json)."""

    def start(self, task: str, total: int | None) -> None:
        pass

    def advance(self, task: str, amount: int) -> None:
        pass

    def finish(self, task: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass
