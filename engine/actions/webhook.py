"""``webhook``: an HTTP(S) request with a text ``body`` or a ``json`` document whose strings are templates."""

from __future__ import annotations

import json
from typing import Any

from engine.actions.base import TEXT, ActionType, FieldSpec, UrlGuard, register
from engine.durations import parse_duration
from engine.templates import render


def _json_tree(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {k: _json_tree(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_tree(v, context) for v in value]
    return value


@register
class Webhook(ActionType):
    name = "webhook"
    fields = {
        "url": FieldSpec(form="url", required=True),
        "method": FieldSpec(form="choice", choices=("POST", "PUT", "PATCH", "GET", "DELETE")),
        "headers": FieldSpec(form="headers"),
        "body": TEXT,
        "json": FieldSpec(form="json"),
        "timeout": FieldSpec(form="duration"),
    }
    # a resent request carries the same webhook-id header, by which the receiver recognises it
    url_guards = (UrlGuard(field="url", what="webhooks", setting=("webhook", "allow_private_addresses")),)

    def check(self, check, fields, place, known):
        if "body" in fields and "json" in fields:
            check.add(place, "give 'body' or 'json', not both")

    def render(self, fields, booking, context, recipient):
        if "json" in fields:
            body = json.dumps(_json_tree(fields["json"], context), ensure_ascii=False)
            content_type = "application/json"
        else:
            body = render(fields["body"], context) if fields.get("body") is not None else ""
            content_type = "text/plain; charset=utf-8"
        headers = {name: render(value, context).strip() for name, value in fields.get("headers", {}).items()}
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), content_type)
        return {
            "url": render(fields["url"], context).strip(),
            "method": fields.get("method", "POST"),
            "headers": {k: v for k, v in headers.items() if k.lower() != "content-type"},
            "body": body,
            "content_type": content_type,
            "timeout": fields.get("timeout"),
        }

    def describe(self, rendered):
        return rendered["url"]

    def channel(self, rendered):
        return "webhook"

    def message(self, rendered, *, stable_id, delivery_id):
        timeout = rendered.get("timeout")
        return {"url": rendered["url"], "method": rendered["method"], "headers": dict(rendered["headers"]),
                "body": rendered["body"], "content_type": rendered["content_type"],
                "delivery_id": f"msg_{stable_id}",
                "timeout": parse_duration(timeout).total_seconds() if timeout else None}
