"""The workflow model: frozen values for a trigger, its filters and its actions.

What each trigger and action type takes is declared by its own module
(:mod:`engine.triggers`, :mod:`engine.actions`); these values hold a parsed
workflow whatever its types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FILTER_IDS = ("locations", "services", "staff")
FILTER_WORDS = ("statuses", "started_by", "locales")
FILTER_NAMES = FILTER_IDS + FILTER_WORDS
STARTED_BY = ("frontend", "backend")


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    """What makes a workflow run: a registered trigger's name and its parameters.

    ``params`` holds every parameter the trigger declares, None where the workflow gives none;
    each reads as an attribute too (``trigger.offset``)."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("type", "params"):
            raise AttributeError(name)  # not set yet (copying, unpickling): never a parameter
        try:
            return self.params[name]
        except KeyError:
            raise AttributeError(f"{self.type} has no parameter {name!r}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """Conditions that must all hold; None means the filter is not given."""

    locations: tuple[int, ...] | None = None
    services: tuple[int, ...] | None = None
    staff: tuple[int, ...] | None = None
    statuses: tuple[str, ...] | None = None
    started_by: tuple[str, ...] | None = None
    locales: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """One step of a workflow; ``fields`` holds the normalised fields of its type."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # the workflow_actions row, once stored


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """A trigger, optional filters and an ordered list of actions."""

    name: str
    trigger: Trigger
    filters: Filters = Filters()
    actions: tuple[Action, ...] = ()
    enabled: bool = True
    id: int | None = None
