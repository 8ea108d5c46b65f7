"""The channels by name, and the configuration sections they declare.

The built-in channels are imported on first use; a channel defined elsewhere
(a test's, a deployment's) is added with :func:`register`. A name that is not
registered is an error, never a default.
"""

from __future__ import annotations

import importlib

from channels.base import Channel, Section

_BUILT_IN = ("channels.smtp", "channels.twilio_sms", "channels.sns", "channels.telegram", "channels.webhook")
_CHANNELS: dict[str, type[Channel]] = {}
_loaded = False


class UnknownChannel(LookupError):
    """No channel of that name is registered."""


def register(channel: type[Channel]) -> type[Channel]:
    """Make a channel class known by its name (a class decorator); a name taken twice is an error."""
    if channel.name in _CHANNELS and _CHANNELS[channel.name] is not channel:
        raise ValueError(f"channel {channel.name!r} is registered twice")
    _CHANNELS[channel.name] = channel
    return channel


def unregister(name: str) -> None:
    """Forget a channel (a test's throwaway one)."""
    _CHANNELS.pop(name, None)


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILT_IN:  # each registers its channels; a missing SDK disables only its sends
            importlib.import_module(module)


def channel_class(name: str) -> type[Channel]:
    """The channel class called *name*."""
    _load()
    try:
        return _CHANNELS[name]
    except KeyError:
        raise UnknownChannel(f"unknown channel {name!r} (known: {', '.join(_CHANNELS)})") from None


def sections() -> dict[str, Section]:
    """Every configuration section the registered channels read, by name, in registration order."""
    _load()
    found: dict[str, Section] = {}
    for channel in _CHANNELS.values():
        section = channel.section
        if section is None:
            continue
        if found.setdefault(section.name, section) != section:
            raise ValueError(f"two channels declare different [{section.name}] sections")
        found[section.name] = section
    return found
