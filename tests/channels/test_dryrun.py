"""A dry run records every message instead of sending it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from channels.dryrun import DryRunChannel
from channels.messages import Sms


def test_every_message_is_recorded_and_gets_a_made_up_id():
    channel = DryRunChannel("twilio-sms")
    message = Sms(to="+14155550100", body="hi")
    first, second = channel.send(message), channel.send(message)
    assert channel.sent == [message, message]
    assert first.provider_id.startswith("dry-run-") and first.provider_id != second.provider_id
    assert channel.name == "twilio-sms" and channel.describe() == "twilio-sms (dry run)"


def test_messages_sent_from_many_threads_are_all_recorded():
    channel = DryRunChannel("smtp")
    messages = [Sms(to="+14155550100", body=str(n)) for n in range(400)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(channel.send, messages))
    assert sorted(channel.sent, key=lambda m: int(m.body)) == messages
