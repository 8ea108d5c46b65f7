"""Turn a workflow document (parsed YAML or JSON) into a :class:`Workflow`, or report every mistake.

:func:`parse_workflow` never stops at the first problem: it walks the whole
document and raises :class:`InvalidWorkflow` with each problem and its place,
e.g. ``actions[1].to[2]: not an email address, 'customer', 'staff' or template``.
"""

from __future__ import annotations

import difflib
import re
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from db.records import KnownIds
from engine import keywords, templates
from engine.durations import format_duration, parse_duration
from engine.errors import InvalidWorkflow, Problem
from engine.workflow import (
    ACTION_FIELDS,
    FILTER_IDS,
    FILTER_NAMES,
    OFFSET_TRIGGERS,
    RESCHEDULE_ASPECTS,
    STARTED_BY,
    TRIGGER_TYPES,
    Action,
    FieldSpec,
    Filters,
    Trigger,
    Workflow,
)

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CHAT = re.compile(r"^(-?\d+|@[A-Za-z][A-Za-z0-9_]{4,})$")
_LOCALE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")

_RECIPIENT_WORDS = {
    "email": "an email address",
    "phone": "a phone number in E.164 form (+15551234567)",
    "chat": "a Telegram chat id",
}


def is_email(text: str) -> bool:
    """An address like ``a@b.c`` or ``Name <a@b.c>``."""
    return bool(_EMAIL.match(parseaddr(text)[1])) and "@" in text


def is_phone(text: str) -> bool:
    """E.164: ``+`` then 7 to 15 digits."""
    return bool(_E164.match(text))


_RECIPIENT_CHECKS = {"email": is_email, "phone": is_phone, "chat": lambda t: bool(_CHAT.match(t))}
# The booking column each recipient word reads, and what it holds, per kind of address.
_RECIPIENT_COLUMNS = {"email": "email", "phone": "phone", "chat": "telegram_chat_id"}
_RECIPIENT_NOUNS = {"email": "email address", "phone": "phone number", "chat": "Telegram chat id"}
_RECIPIENT_TABLES = {"customer": "customers", "staff": "staff"}
# The booking columns a filter reads; it has no data when every one is absent.
_FILTER_COLUMNS = {"started_by": ("appointments.started_by",), "locales": ("customers.locale", "appointments.locale")}


class _Checker:
    """Collects problems while a document is read."""

    def __init__(self, trigger_type: str, absent: dict[str, str] | None = None):
        self.problems: list[Problem] = []
        self.trigger_type = trigger_type
        self.keywords = keywords.available(trigger_type)
        self.absent = absent or {}  # booking column ("table.column") → why the booking data has nothing for it
        self.unfillable = keywords.unfillable(self.absent)  # keyword → why

    def add(self, place: str, message: str) -> None:
        self.problems.append(Problem(place=place, message=message))

    def mapping(self, value: Any, place: str, allowed: tuple[str, ...]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(place, f"expected a mapping, got {_kind(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.add(_join(place, str(key)), f"unknown field (expected one of: {', '.join(allowed)})")
        return value

    def string_list(self, value: Any, place: str) -> list[str] | None:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not value:
            self.add(place, "expected a non-empty list")
            return None
        items = []
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int)) or str(item).strip() == "":
                self.add(f"{place}[{index}]", f"expected a non-empty string, got {_kind(item)}")
            else:
                items.append(str(item).strip())
        return items

    def template(self, value: Any, place: str) -> str | None:
        if not isinstance(value, str):
            self.add(place, f"expected text, got {_kind(value)}")
            return None
        value = templates.from_booknetic(value)  # stored, and exported, in Jinja's form
        for message in templates.check(value, self.keywords, self.trigger_type):
            self.add(place, message)
        for name in sorted(templates.names_used(value) & self.unfillable.keys()):
            self.add(place, f"keyword '{name}' has no data here: {self.unfillable[name]}")
        return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _join(place: str, key: str) -> str:
    return f"{place}.{key}" if place else key


def parse_workflow(document: Any, *, known: KnownIds | None = None) -> Workflow:
    """Validate *document* and return the workflow; raise InvalidWorkflow listing every problem.

    With *known*, filters naming locations, services or staff that do not exist are errors too.
    """
    if not isinstance(document, dict):
        raise InvalidWorkflow([Problem(place="", message=f"a workflow is a mapping, got {_kind(document)}")])
    trigger_doc = document.get("trigger")
    trigger_type = trigger_doc.get("type") if isinstance(trigger_doc, dict) else None
    check = _Checker(trigger_type if trigger_type in TRIGGER_TYPES else "appointment_created",
                     known.absent if known is not None else None)
    check.mapping(document, "", ("name", "enabled", "trigger", "filters", "actions"))
    name = _name(check, document.get("name"))
    enabled = document.get("enabled", True)
    if not isinstance(enabled, bool):
        check.add("enabled", f"expected true or false, got {_kind(enabled)}")
    trigger = _trigger(check, trigger_doc)
    filters = _filters(check, document.get("filters"), trigger, known)
    actions = _actions(check, document.get("actions"), trigger, known)
    if check.problems:
        raise InvalidWorkflow(check.problems)
    return Workflow(name=name, enabled=enabled, trigger=trigger, filters=filters, actions=actions)


def _name(check: _Checker, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        check.add("name", "required: a non-empty name")
        return ""
    return value.strip()


def _trigger(check: _Checker, value: Any) -> Trigger | None:
    if value is None:
        check.add("trigger", "required: a mapping with a 'type'")
        return None
    doc = check.mapping(value, "trigger", ("type", "offset", "grace", "from", "to", "on"))
    kind = doc.get("type")
    if kind not in TRIGGER_TYPES:
        check.add("trigger.type", f"unknown trigger {kind!r} (expected one of: {', '.join(TRIGGER_TYPES)})")
        return None
    allowed = {"type"} | ({"offset", "grace"} if kind in OFFSET_TRIGGERS else set())
    allowed |= {"from", "to"} if kind == "appointment_status_changed" else set()
    allowed |= {"on"} if kind == "appointment_rescheduled" else set()
    for key in doc:
        if key not in allowed and key in ("offset", "grace", "from", "to", "on"):
            check.add(f"trigger.{key}", f"not a parameter of {kind}")
    params: dict[str, Any] = {}
    if kind in OFFSET_TRIGGERS:
        if "offset" not in doc:
            check.add("trigger.offset", f"required for {kind} (e.g. -30m, 0, 2h)")
        for key in ("offset", "grace"):
            if key in doc:
                params[key] = _duration(check, doc[key], f"trigger.{key}")
        if params.get("grace") is not None and params["grace"].total_seconds() <= 0:
            check.add("trigger.grace", "must be positive")
    if kind == "appointment_status_changed":
        for key, attr in (("from", "from_statuses"), ("to", "to_statuses")):
            if key in doc:
                statuses = check.string_list(doc[key], f"trigger.{key}")
                params[attr] = tuple(statuses) if statuses else None
    if kind == "appointment_rescheduled" and "on" in doc:
        aspects = check.string_list(doc["on"], "trigger.on") or []
        wrong = [a for a in aspects if a not in RESCHEDULE_ASPECTS]
        if wrong or not aspects:
            check.add("trigger.on", f"expected a non-empty list of {', '.join(RESCHEDULE_ASPECTS)}; "
                                    f"got {doc['on']!r}")
        else:
            params["on"] = tuple(a for a in RESCHEDULE_ASPECTS if a in aspects)
    return Trigger(type=kind, **params)


def _duration(check: _Checker, value: Any, place: str):
    try:
        return parse_duration(value)
    except ValueError as error:
        check.add(place, str(error))
        return None


def _filters(check: _Checker, value: Any, trigger: Trigger | None, known: KnownIds | None) -> Filters:
    doc = check.mapping(value, "filters", FILTER_NAMES)
    parsed: dict[str, tuple] = {}
    for name in FILTER_NAMES:
        if name not in doc:
            continue
        place = f"filters.{name}"
        if trigger is not None and trigger.type == "customer_created" and name != "locales":
            check.add(place, "customer_created has no appointment: only 'locales' applies")
            continue
        items = check.string_list(doc[name], place)
        if items is None:
            continue
        _filter_data(check, name, place, trigger)
        if name in FILTER_IDS:
            parsed[name] = _ids(check, items, place, known and getattr(known, name))
        else:
            parsed[name] = tuple(items)
            _words(check, name, items, place)
    return Filters(**parsed)


def _filter_data(check: _Checker, name: str, place: str, trigger: Trigger | None) -> None:
    """A filter on columns the booking data has none of would hold for every appointment or for none."""
    columns = _FILTER_COLUMNS.get(name, ())
    if trigger is not None and trigger.type == "customer_created":
        columns = tuple(c for c in columns if c.startswith("customers."))
    if columns and all(c in check.absent for c in columns):
        why = "; ".join(f"{c}: {check.absent[c]}" for c in columns)
        check.add(place, f"filter '{name}' has no data here: {why}")


def _ids(check: _Checker, items: list[str], place: str, existing: frozenset[int] | None) -> tuple[int, ...]:
    ids = []
    for index, item in enumerate(items):
        if not item.lstrip("-").isdigit():
            check.add(f"{place}[{index}]", f"expected an id (integer), got {item!r}")
        elif existing is not None and int(item) not in existing:
            check.add(f"{place}[{index}]", f"no {place.split('.')[1].rstrip('s')} with id {item}")
        else:
            ids.append(int(item))
    return tuple(ids)


def _words(check: _Checker, name: str, items: list[str], place: str) -> None:
    for index, item in enumerate(items):
        if name == "started_by" and item not in STARTED_BY:
            check.add(f"{place}[{index}]", f"expected 'frontend' or 'backend', got {item!r}")
        if name == "locales" and not _LOCALE.match(item):
            check.add(f"{place}[{index}]", f"not a locale like 'en' or 'fr_FR': {item!r}")


def _actions(check: _Checker, value: Any, trigger: Trigger | None, known: KnownIds | None) -> tuple[Action, ...]:
    if not isinstance(value, list) or not value:
        check.add("actions", "required: a non-empty list of actions")
        return ()
    actions = []
    for index, doc in enumerate(value):
        action = _action(check, doc, f"actions[{index}]", trigger, known)
        if action is not None:
            actions.append(action)
    return tuple(actions)


def _action(check: _Checker, doc: Any, place: str, trigger: Trigger | None,
            known: KnownIds | None = None) -> Action | None:
    if not isinstance(doc, dict):
        check.add(place, f"expected a mapping with a 'type', got {_kind(doc)}")
        return None
    kind = doc.get("type")
    if kind not in ACTION_FIELDS:
        check.add(f"{place}.type", f"unknown action {kind!r} (expected one of: {', '.join(ACTION_FIELDS)})")
        return None
    specs = ACTION_FIELDS[kind]
    check.mapping(doc, place, ("type", *specs))
    no_appointment = trigger is not None and trigger.type == "customer_created"
    if kind == "set_status" and no_appointment:
        check.add(f"{place}.type", "set_status needs an appointment; customer_created has none")
    fields = {}
    for name, spec in specs.items():
        if name not in doc or doc[name] is None:
            if spec.required:
                check.add(f"{place}.{name}", f"required for {kind}")
            continue
        fields[name] = _field(check, doc[name], f"{place}.{name}", spec, no_appointment)
    if kind == "webhook" and "body" in fields and "json" in fields:
        check.add(place, "give 'body' or 'json', not both")
    if kind == "set_status" and known is not None and known.read_only:
        check.add(place, f"set_status cannot write here: {known.read_only}")
    elif kind == "set_status" and isinstance(fields.get("status"), str):
        _status(check, fields["status"], f"{place}.status", known)
    return Action(type=kind, fields=fields)


def _status(check: _Checker, value: str, place: str, known: KnownIds | None) -> None:
    """A status set_status writes: never empty; a literal one known, when the known ones are given
    (the configured statuses and those the appointments hold). A template is judged when it runs."""
    if not value.strip():
        check.add(place, "empty: set_status needs the status to write")
    elif known is not None and known.statuses is not None and not templates.is_template(value) \
            and value not in known.statuses:
        close = difflib.get_close_matches(value, sorted(known.statuses), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        check.add(place, f"unknown status {value!r} (known: {', '.join(sorted(known.statuses))}; "
                         f"{known.statuses_from}){hint}")


def _field(check: _Checker, value: Any, place: str, spec: FieldSpec, no_appointment: bool) -> Any:
    if spec.kind == "template":
        return check.template(value, place)
    if spec.kind == "recipients":
        return _recipients(check, value, place, spec.recipient, no_appointment)
    if spec.kind == "template_list":
        items = check.string_list(value, place) or []
        return [check.template(item, f"{place}[{index}]") or item for index, item in enumerate(items)]
    if spec.kind == "choice":
        text = str(value).upper() if spec.choices[0].isupper() else str(value).lower()
        if text not in spec.choices:
            check.add(place, f"expected one of: {', '.join(spec.choices)}; got {value!r}")
        return text
    if spec.kind == "duration":
        duration = _duration(check, value, place)
        if duration is not None and duration.total_seconds() <= 0:
            check.add(place, "must be positive")
        return format_duration(duration) if duration is not None else None
    if spec.kind == "url":
        return _url(check, value, place)
    if spec.kind == "headers":
        return _headers(check, value, place)
    return _json_templates(check, value, place)


def _recipients(check: _Checker, value: Any, place: str, kind: str, no_appointment: bool) -> list[str]:
    items = [templates.from_booknetic(item) for item in check.string_list(value, place) or []]
    expected = f"not {_RECIPIENT_WORDS[kind]}, 'customer', 'staff' or template"
    for index, item in enumerate(items):
        here = f"{place}[{index}]"
        column = f"{_RECIPIENT_TABLES.get(item)}.{_RECIPIENT_COLUMNS[kind]}"
        if item == "staff" and no_appointment:
            check.add(here, "customer_created has no staff")
        elif item in ("customer", "staff") and column in check.absent:
            check.add(here, f"'{item}' has no {_RECIPIENT_NOUNS[kind]} here: {column}: {check.absent[column]}")
        elif item in ("customer", "staff"):
            continue
        elif templates.is_template(item):
            check.template(item, here)
        elif not _RECIPIENT_CHECKS[kind](item):
            check.add(here, f"{expected}: {item!r}")
    return items


def _url(check: _Checker, value: Any, place: str) -> str | None:
    text = check.template(value, place)
    if text is None or templates.is_template(text):
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        check.add(place, f"not an http(s) URL: {text!r}")
    return text


def _headers(check: _Checker, value: Any, place: str) -> dict[str, str]:
    if not isinstance(value, dict):
        check.add(place, f"expected a mapping of header names to text, got {_kind(value)}")
        return {}
    headers = {}
    for name, text in value.items():
        rendered = check.template(str(text) if isinstance(text, (int, float)) else text, f"{place}.{name}")
        headers[str(name)] = rendered
    return headers


def _json_templates(check: _Checker, value: Any, place: str) -> Any:
    if isinstance(value, str):
        return check.template(value, place)
    if isinstance(value, dict):
        return {str(k): _json_templates(check, v, f"{place}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_json_templates(check, v, f"{place}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    check.add(place, f"not a JSON value: {_kind(value)}")
    return None
