"""Booknetic's workflows as apptflow workflow documents, for ``apptflow import booknetic``.

Pure translation of the rows :mod:`db.booknetic` reads: Booknetic's event
(``when``) becomes a trigger, its ``data`` the trigger's offset and the
filters, each action's ``driver`` and ``data`` an action. Texts keep their
``{keyword}`` form, which apptflow reads as Booknetic does (docs/workflows.md);
the documents are then checked like any file given to ``workflow add``.
Whatever has no equivalent is reported with the reason, and a workflow with
anything untranslatable is not imported at all (half a workflow would send
something its admin never wrote).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from db.booknetic import BookneticAction, BookneticWorkflow
from engine.actions import action_type
from engine.errors import UnknownType

# Booknetic's event → apptflow's trigger.
TRIGGERS = {
    "booking_new": "appointment_created",
    "booking_rescheduled": "appointment_rescheduled",
    "booking_status_changed": "appointment_status_changed",
    "booking_starts": "appointment_starts",
    "booking_ends": "appointment_ends",
    "new_wp_user_customer_created": "customer_created",
    "customer_signup": "customer_created",
}
UNTRANSLATABLE_EVENTS = {
    "appointment_paid": "apptflow does not see Booknetic's payments happen (only the amounts on the booking)",
    "customer_forgot_password": "passwords and sign-in pages are WordPress's, not the booking data's",
    "customer_reset_password": "passwords and sign-in pages are WordPress's, not the booking data's",
    "package_booking_created": "Booknetic's Packages add-on is not mapped",
}
_TENANT_EVENT = "Booknetic SaaS's tenant events are about its subscribers, not bookings"
_UNITS = {"minute": "m", "minutes": "m", "hour": "h", "hours": "h", "day": "d", "days": "d", "week": "w",
          "weeks": "w"}
_FILTERS = {"locations": "locations", "services": "services", "staffs": "staff", "staff": "staff"}
_RECIPIENT_WORDS = {"customer_email": "customer", "customer_phone": "customer", "customer_phone_number": "customer",
                    "staff_email": "staff", "staff_phone": "staff", "staff_phone_number": "staff"}
_KEYWORD = re.compile(r"^\{\s*([a-z][a-z0-9_]*)\s*\}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Translation:
    """One Booknetic workflow: its apptflow document, or the reasons it has none; notes either way."""

    source: str  # "Booknetic workflow 3 (Reminder)"
    document: dict[str, Any] | None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def translate(workflow: BookneticWorkflow) -> Translation:
    """Translate one Booknetic workflow; a document only if every part of it has an equivalent."""
    source = f"Booknetic workflow {workflow.id} ({workflow.name})"
    problems: list[str] = []
    notes: list[str] = []
    data = workflow.data if isinstance(workflow.data, dict) else {}
    if not isinstance(workflow.data, dict):
        problems.append(f"data: not a JSON object ({str(workflow.data)[:60]!r})")
    trigger = _trigger(workflow.when, data, problems)
    filters = _filters(workflow.when, data, problems)
    actions = []
    for number, action in enumerate(workflow.actions, start=1):
        if not action.active:
            notes.append(f"action {number} ({action.driver}) is switched off in Booknetic: left out")
            continue
        actions.append(_action(number, action, problems, notes))
    if not [a for a in actions if a is not None] and not problems:
        problems.append("no action that is switched on")
    if problems:
        return Translation(source=source, document=None, problems=tuple(problems), notes=tuple(notes))
    document = {"name": workflow.name, "enabled": workflow.active, "trigger": trigger, "actions": actions}
    if filters:
        document["filters"] = filters
    return Translation(source=source, document=document, notes=tuple(notes))


# --- the trigger and the filters ----------------------------------------------------------------------------

def _trigger(when: str, data: dict, problems: list[str]) -> dict[str, Any] | None:
    if when in TRIGGERS:
        trigger: dict[str, Any] = {"type": TRIGGERS[when]}
    else:
        reason = UNTRANSLATABLE_EVENTS.get(when) or (_TENANT_EVENT if when.startswith("tenant_") else None)
        problems.append(f"event {when!r}: " + (reason or "not a Booknetic event apptflow knows"))
        return None
    if when in ("booking_starts", "booking_ends"):
        offset = _offset(data, problems)
        if offset is not None:
            trigger["offset"] = offset
    if when == "booking_status_changed":
        for key, name in (("prev_statuses", "from"), ("statuses", "to")):
            statuses = _words(data.get(key), f"data.{key}", problems)
            if statuses:
                trigger[name] = statuses
    return trigger


def _offset(data: dict, problems: list[str]) -> str | None:
    """``offset_sign``/``offset_value``/``offset_type`` as a signed duration: 30 minutes before is ``-30m``."""
    sign, value, unit = data.get("offset_sign", "before"), data.get("offset_value", 0), data.get("offset_type", "minute")
    try:
        amount = int(str(value).strip() or 0)
    except ValueError:
        problems.append(f"data.offset_value: {value!r} is not a whole number")
        return None
    if unit not in _UNITS:
        problems.append(f"data.offset_type: {unit!r} is not minute, hour or day")
        return None
    if sign not in ("before", "after"):
        problems.append(f"data.offset_sign: {sign!r} is not before or after")
        return None
    return f"{'-' if sign == 'before' and amount else ''}{amount}{_UNITS[unit]}"


def _filters(when: str, data: dict, problems: list[str]) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if when in ("new_wp_user_customer_created", "customer_signup"):
        locale = str(data.get("locale") or "").strip()
        return {"locales": [locale]} if locale else {}
    for key, name in _FILTERS.items():
        ids = _ids(data.get(key), f"data.{key}", problems)
        if ids:
            filters[name] = ids
    if when != "booking_status_changed":
        statuses = _words(data.get("statuses"), "data.statuses", problems)
        if statuses:
            filters["statuses"] = statuses
    locale = str(data.get("locale") or "").strip()
    if locale:
        filters["locales"] = [locale]
    called_from = str(data.get("called_from") or "").strip()
    if called_from in ("frontend", "backend"):
        filters["started_by"] = [called_from]
    elif called_from:
        problems.append(f"data.called_from: {called_from!r} is not frontend or backend")
    return filters


def _listed(value: Any) -> list:
    """Booknetic's lists: a JSON array, or text with commas; empty means any."""
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value) if isinstance(value, list) else [value]


def _ids(value: Any, place: str, problems: list[str]) -> list[int]:
    ids = []
    for item in _listed(value):
        if str(item).strip().isdigit():
            ids.append(int(str(item).strip()))
        else:
            problems.append(f"{place}: {item!r} is not an id")
    return ids


def _words(value: Any, place: str, problems: list[str]) -> list[str]:
    return [str(item).strip() for item in _listed(value) if str(item).strip()]


# --- actions --------------------------------------------------------------------------------------------------

def _action(number: int, action: BookneticAction, problems: list[str], notes: list[str]) -> dict[str, Any] | None:
    place = f"action {number} ({action.driver})"
    data = action.data if isinstance(action.data, dict) else None
    if data is None:
        problems.append(f"{place}: data is not a JSON object")
        return None
    translate_one = _DRIVERS.get(action.driver)
    if translate_one is None:
        problems.append(f"{place}: no apptflow action does what Booknetic's {action.driver!r} driver does")
        return None
    return translate_one(place, data, problems, notes)


def recipients(value: Any) -> list[str]:
    """Booknetic's ``to`` (text with commas, keywords in it) as apptflow's list: its customer and staff
    keywords as the words ``customer`` and ``staff``, other keywords as template expressions."""
    entries = []
    for item in _listed(value):
        keyword = _KEYWORD.match(str(item))
        if keyword and keyword.group(1) in _RECIPIENT_WORDS:
            entry = _RECIPIENT_WORDS[keyword.group(1)]
        elif keyword:
            entry = "{{ " + keyword.group(1) + " }}"
        else:
            entry = str(item)
        if entry not in entries:
            entries.append(entry)
    return entries


def _required(place: str, data: dict, key: str, problems: list[str]) -> str:
    value = data.get(key)
    if value in (None, ""):
        problems.append(f"{place}: {key} is empty")
        return ""
    return str(value)


def _email(place: str, data: dict, problems: list[str], notes: list[str]) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "email", "to": recipients(data.get("to")),
                              "subject": _required(place, data, "subject", problems),
                              "body": _required(place, data, "body", problems)}
    if not action["to"]:
        problems.append(f"{place}: to is empty")
    if "<" in action["body"] and ">" in action["body"]:
        action["html"] = action.pop("body")  # Booknetic's editor writes HTML
        action["body"] = re.sub(r"<[^>]+>", "", action["html"])
    attachments = _listed(data.get("attachments"))
    if attachments:
        action["attachments"] = [str(a) for a in attachments]
    return action


def _message(kind: str, field_name: str):
    def translate_one(place: str, data: dict, problems: list[str], notes: list[str]) -> dict[str, Any]:
        action = {"type": kind, "to": recipients(data.get("to")), field_name: _required(place, data, "body", problems)}
        if kind == "sms":
            action["provider"] = "twilio"
            notes.append(f"{place}: sent through Twilio ([twilio] in apptflow's configuration); set provider: sns "
                         "for AWS SNS")
        if not action["to"]:
            problems.append(f"{place}: to is empty")
        return action
    return translate_one


def _telegram(place: str, data: dict, problems: list[str], notes: list[str]) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "telegram", "chat_id": recipients(data.get("to")),
                              "text": _required(place, data, "body", problems)}
    if not action["chat_id"]:
        problems.append(f"{place}: to is empty")
    documents = _listed(data.get("documents"))
    if documents:
        action["attachments"] = [str(d) for d in documents]
    return action


def _headers(place: str, value: Any, problems: list[str]) -> dict[str, str]:
    """Booknetic's headers: a JSON object (``[]`` when empty); a list of {key, value} or ``Name: value`` lines are
    read too, as a hand-edited row may have them."""
    if value in (None, "", [], {}):
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list) and all(isinstance(h, dict) for h in value):
        return {str(h.get("key") or h.get("name")): str(h.get("value", "")) for h in value
                if h.get("key") or h.get("name")}
    if isinstance(value, str):
        pairs = [line.split(":", 1) for line in value.splitlines() if ":" in line]
        return {name.strip(): content.strip() for name, content in pairs}
    problems.append(f"{place}: headers are neither an object, a list of key/value nor lines of Name: value")
    return {}


def _webhook(place: str, data: dict, problems: list[str], notes: list[str]) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "webhook", "url": _required(place, data, "url", problems),
                              "method": str(data.get("request_method") or "POST").upper()}
    headers = _headers(place, data.get("headers"), problems)
    kind = str(data.get("content_type") or "").upper()
    body = data.get("body")
    if not kind:
        if body not in (None, "", [], {}):
            problems.append(f"{place}: a body without a content_type (JSON or FORM_DATA)")
    elif kind == "JSON":
        _json_body(action, headers, body)
    elif kind == "FORM_DATA":
        fields = body if isinstance(body, dict) else _headers(place, body, problems)
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        action["body"] = "&".join(f"{quote(str(name))}={_form_value(str(value))}" for name, value in fields.items())
    else:
        problems.append(f"{place}: content_type {kind!r} is not JSON or FORM_DATA")
    if headers:
        action["headers"] = headers
    return action


def _json_body(action: dict[str, Any], headers: dict[str, str], body: Any) -> None:
    """Booknetic's JSON body, text with {keywords} in it: as apptflow's ``json`` mapping when it is JSON (its
    string leaves are then templates, and a value with a quote in it stays valid JSON); as text otherwise."""
    if body in (None, ""):
        headers.setdefault("Content-Type", "application/json")
        return
    try:
        document = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        document = None  # a keyword outside quotes: {"id": {appointment_id}}
    if isinstance(document, (dict, list)):
        action["json"] = document
    else:
        headers.setdefault("Content-Type", "application/json")
        action["body"] = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)


def _form_value(value: str) -> str:
    """A form field's value: its text URL-encoded now, each {keyword} URL-encoded when it is rendered."""
    parts = re.split(r"(\{\s*[a-z][a-z0-9_]*\s*\})", value)
    return "".join("{{ " + part.strip("{} ") + " | urlencode }}" if i % 2 else quote(part)
                   for i, part in enumerate(parts))


def _set_status(place: str, data: dict, problems: list[str], notes: list[str]) -> dict[str, Any]:
    status = _required(place, data, "status", problems)
    targets = str(data.get("appointment_ids") or "{appointment_id}").replace(" ", "")
    if targets != "{appointment_id}":
        problems.append(f"{place}: sets the status of {targets!r}; apptflow's set_status sets the status of the "
                        "workflow's own appointment only")
    if str(data.get("run_workflows", "1")).strip().lower() in ("0", "false", "off", "no"):
        notes.append(f"{place}: Booknetic would not run workflows on this change; apptflow's status-changed "
                     "workflows do see it (bounded by [daemon] max_chain_depth)")
    return {"type": "set_status", "status": status}


# Booknetic's action drivers (the `driver` column): core's set-status and the add-ons' email, Telegram,
# webhook, Twilio SMS and Twilio WhatsApp.
_DRIVERS = {
    "email": _email,
    "twilio-sms": _message("sms", "body"),
    "twilio-whatsapp": _message("whatsapp", "body"),
    "telegram": _telegram,
    "webhook": _webhook,
    "booking-set-status": _set_status,
}


# --- one workflow per locale, merged ----------------------------------------------------------------------

def merge_locales(translations: list[Translation]) -> list[Translation]:
    """Translations whose documents differ only by their name, their ``locales`` filter (one locale each,
    or none) and the texts of their actions, as one workflow each with per-locale texts (``--merge-locales``).

    Booknetic has one workflow per language; apptflow can hold the languages in one. The ``default`` text
    is the one of the workflow without a locale filter when there is one (the merged workflow then has no
    locale filter either: it went to every customer), else the English one, else the first; otherwise the
    merged workflow keeps a ``locales`` filter of every merged locale, so it sends to whom Booknetic sent.
    The merged workflow takes the name of the one whose texts are the default. Anything else is left as it is.
    """
    groups: dict[str, list[Translation]] = {}
    ordered: list[list[Translation]] = []
    for translation in translations:
        shape = _shape(translation.document)
        if shape is None:
            ordered.append([translation])
        elif shape in groups:
            groups[shape].append(translation)
        else:
            groups[shape] = [translation]
            ordered.append(groups[shape])
    return [merged for group in ordered for merged in _merged(group)]


def _locale(document: dict[str, Any]) -> str | None:
    locales = (document.get("filters") or {}).get("locales") or []
    return locales[0] if locales else None


def _texts(action: dict[str, Any]) -> list[str]:
    """The fields of an action document that are texts with per-locale variants."""
    try:
        specs = action_type(action.get("type")).field_specs()
    except UnknownType:
        return []
    return [name for name, spec in specs.items() if spec.variants and name in action]


def _shape(document: dict[str, Any] | None) -> str | None:
    """What a document is apart from its name, its one locale and its texts; None when it cannot merge."""
    if document is None or len((document.get("filters") or {}).get("locales") or []) > 1:
        return None
    shape = copy.deepcopy(document)
    shape.pop("name")
    (shape.get("filters") or {}).pop("locales", None)
    if not shape.get("filters"):
        shape.pop("filters", None)
    for action in shape["actions"]:
        for name in _texts(action):
            action[name] = None
    return json.dumps(shape, sort_keys=True, default=str)


def _merged(group: list[Translation]) -> list[Translation]:
    if len(group) == 1:
        return group
    locales = [_locale(t.document) for t in group]
    if len({(locale or "").lower() for locale in locales}) < len(group):
        note = "not merged with the others of the same shape: two of them have the same locale (or none)"
        return _unmerged(group, note)
    default = _default(group, locales)
    document = copy.deepcopy(default.document)
    filtered = [locale for locale in locales if locale]
    if len(filtered) < len(group):
        document.get("filters", {}).pop("locales", None)
    else:
        document.setdefault("filters", {})["locales"] = filtered
    if document.get("filters") == {}:
        document.pop("filters")
    for position, action in enumerate(document["actions"]):
        for name in _texts(action):
            texts = {locale: t.document["actions"][position][name] for locale, t in zip(locales, group) if locale}
            if any(text != action[name] for text in texts.values()):
                action[name] = {**texts, "default": action[name]}
    return [Translation(source=_sources(group), document=document, notes=_merge_notes(group, locales, default))]


def _default(group: list[Translation], locales: list[str | None]) -> Translation:
    """The workflow whose texts are the default: the one without a locale filter, else English, else the first."""
    for wanted in (lambda locale: locale is None, lambda locale: (locale or "").lower().split("_")[0] == "en"):
        for translation, locale in zip(group, locales):
            if wanted(locale):
                return translation
    return group[0]


def _sources(group: list[Translation]) -> str:
    numbers = [t.source.removeprefix("Booknetic workflow ") for t in group]
    return "Booknetic workflows " + ", ".join(numbers)


def _merge_notes(group: list[Translation], locales: list[str | None], default: Translation) -> tuple[str, ...]:
    notes = [note for t in group for note in t.notes]
    parts = [f"{locale or 'every locale'} from {t.source}" for t, locale in zip(group, locales)]
    notes.append(f"merged into one workflow with per-locale texts: {'; '.join(parts)}; the default texts are "
                 f"{default.source}'s")
    if None in locales:
        notes.append("Booknetic sent the workflow without a locale filter to every customer besides the ones of "
                     "their locale; apptflow sends each customer one message, in their locale's texts")
    return tuple(notes)


def _unmerged(group: list[Translation], note: str) -> list[Translation]:
    return [dataclasses.replace(t, notes=(*t.notes, note)) for t in group]
