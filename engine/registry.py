"""A registry of plug-ins of one kind (action types, triggers) by name: an unknown name is an error."""

from __future__ import annotations

from typing import Generic, TypeVar

from engine.errors import UnknownType

T = TypeVar("T")


class Registry(Generic[T]):
    """Named instances, in registration order; a name taken twice, or looked up unregistered, is an error."""

    def __init__(self, what: str):
        self.what = what  # "action", "trigger": for the messages
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._items[name] = item

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: object) -> T:
        """The item registered as *name*; UnknownType otherwise."""
        try:
            return self._items[name]  # type: ignore[index]
        except (KeyError, TypeError):
            raise UnknownType(self.what, name, self.names()) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def items(self) -> tuple[tuple[str, T], ...]:
        return tuple(self._items.items())

    def values(self) -> tuple[T, ...]:
        return tuple(self._items.values())
