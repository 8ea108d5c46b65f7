"""Telegram replies, read with the Bot API's ``getUpdates`` (long polling: no public URL needed).

Telegram lets one reader poll a bot at a time, so only the leading instance polls. Where it stands is
kept in the database (``inbound_offsets``) and moves on only after the messages before it are recorded;
a message read twice (a crash in between) is recorded once, by its update id.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from sqlalchemy.engine import Engine

from channels import ChannelError, TransientSendError
from channels.base import Common
from channels.telegram import TelegramChannel
from db import inbound as store
from db.errors import unavailable
from scheduler.conversation import TELEGRAM, Conversation

logger = logging.getLogger(__name__)

SOURCE = TelegramChannel.name  # its row in inbound_offsets
# How long one getUpdates waits for a message when none is there (Telegram's long polling).
LONG_POLL = 25.0
# After a refusal (a wrong token, another reader of the same bot), before asking again.
REFUSED_PAUSE = 30.0


def start_polling(config, conversation: Conversation, **options) -> TelegramReplies | None:
    """The reader ``[telegram] receive_replies`` asks for, started; None when it is off."""
    settings = config.section(TelegramChannel.section.name)
    if not settings["receive_replies"]:
        return None
    replies = TelegramReplies(conversation.engine, settings, conversation, **options)
    replies.start()
    logger.info("reading Telegram replies with getUpdates")
    return replies


class TelegramReplies:
    """Reads the bot's updates and hands each text message to the :class:`Conversation`."""

    def __init__(self, engine: Engine, settings, conversation: Conversation, *, leading: Callable[[], bool],
                 stopping: threading.Event, clock: Callable[[], dt.datetime], pause: float,
                 wait: float = LONG_POLL):
        self.engine = engine
        self.bot = TelegramChannel.configured(settings, Common())
        self.conversation = conversation
        self.leading, self.stopping, self.clock = leading, stopping, clock
        self.pause, self.wait = pause, wait
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="apptflow-telegram-replies", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop after the request under way (which the next start asks again, from the same offset)."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.bot.close()

    def _run(self) -> None:
        while not self.stopping.is_set():
            if not self.leading():
                self.stopping.wait(self.pause)
                continue
            try:
                read = self.poll_once()
            except TransientSendError as error:
                logger.warning("telegram replies: %s; asking again", error)
                self.stopping.wait(self.pause)
            except ChannelError as error:
                logger.error("telegram replies: %s; asking again in %gs", error, REFUSED_PAUSE)
                self.stopping.wait(REFUSED_PAUSE)
            except Exception as error:  # noqa: BLE001 - the loop must survive the database and bugs
                if not unavailable(error):
                    logger.exception("telegram replies failed; asking again")
                self.stopping.wait(self.pause)
            else:
                if not read:
                    self.stopping.wait(self.pause)

    def poll_once(self) -> int:
        """Read the waiting updates once, record their messages, move the offset on; how many were read."""
        with self.engine.connect() as conn:
            offset = store.read_offset(conn, SOURCE)
        updates = self.bot.updates(offset, self.wait)
        if not updates or self.stopping.is_set():
            return 0  # not confirmed: read again from the same offset
        for update in updates:
            if update.text and update.chat_id:
                self.conversation.message(source=TELEGRAM, channel=TelegramChannel.name, sender=update.chat_id,
                                          body=update.text, provider_id=f"telegram:{update.update_id}",
                                          now=self.clock())
        with self.engine.begin() as conn:
            store.save_offset(conn, SOURCE, max(u.update_id for u in updates) + 1, self.clock())
        return len(updates)
