"""Transports: one module per channel behind one small interface (see :mod:`channels.base`).

Channels import nothing else of apptflow's: they receive fully rendered
messages and either return a :class:`~channels.base.Receipt` or raise
:class:`~channels.base.TransientSendError` / :class:`~channels.base.PermanentSendError`.
"""

from channels.base import (
    Channel,
    ChannelError,
    ChannelUnavailable,
    PermanentSendError,
    Receipt,
    RecipientOptedOut,
    TransientSendError,
)

__all__ = [
    "Channel", "ChannelError", "ChannelUnavailable", "PermanentSendError", "Receipt", "RecipientOptedOut",
    "TransientSendError",
]
