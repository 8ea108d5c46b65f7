"""``message_undelivered``: a message apptflow sent about an appointment did not arrive (the provider's
receipt says undelivered or failed) or was refused for good. ``channels`` narrows which action types'
messages count, ``workflows`` whose (ids or names)."""

from __future__ import annotations

from db.codes import Received
from engine import keywords
from engine.triggers.base import Param, TriggerType, register


@register
class MessageUndelivered(TriggerType):
    name = "message_undelivered"
    params = {"channels": Param(form="words"), "workflows": Param(form="words")}
    keywords = keywords.UNDELIVERED

    def check(self, check, params):
        from engine.actions import to_persons  # the action types register after the triggers

        for index, channel in enumerate(params.get("channels") or ()):
            if channel not in to_persons():
                check.add(f"trigger.channels[{index}]", f"not a channel whose messages can be undelivered: "
                                                        f"{channel!r} (one of {', '.join(to_persons())})")

    def fired(self, event):
        if event.table_name != Received.UNDELIVERED:
            return None
        return {name: event.new[name] for name in ("failed_channel", "failure_code", "failure_reason",
                                                    "failed_workflow_id", "failed_workflow")}

    def admits(self, trigger, context):
        channels, workflows = trigger.params.get("channels"), trigger.params.get("workflows")
        return (channels is None or context["failed_channel"] in channels) and (
            workflows is None or str(context["failed_workflow_id"]) in workflows
            or context["failed_workflow"] in workflows)

    def sample(self, trigger, booking):
        from engine.actions import to_persons

        return {"failed_channel": (trigger.params.get("channels") or to_persons())[0], "failure_code": "30003",
                "failure_reason": "unreachable handset"}
