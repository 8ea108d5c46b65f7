"""Exceptions raised by the workflow engine."""

from __future__ import annotations

from dataclasses import dataclass


class EngineError(Exception):
    """The workflow engine could not do what was asked."""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One mistake in a workflow definition and where it is (``actions[1].to[2]``)."""

    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}" if self.place else self.message


class InvalidWorkflow(EngineError):
    """The workflow definition is invalid."""

    def __init__(self, problems: list[Problem]):
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RenderError(EngineError):
    """A template could not be rendered."""


class UnknownType(EngineError):
    """No action type or trigger of that name is registered."""

    def __init__(self, what: str, name: object, known: tuple[str, ...]):
        self.name = name
        super().__init__(f"unknown {what} {name!r} (expected one of: {', '.join(known)})")
