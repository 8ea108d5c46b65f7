"""Turn a workflow document (parsed YAML or JSON) into a :class:`Workflow`, or report every mistake.

:func:`parse_workflow` never stops at the first problem: it walks the whole
document and raises :class:`InvalidWorkflow` with each problem and its place,
e.g. ``actions[1].to[2]: not an email address, 'customer', 'staff' or template``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from db.records import KnownIds
from engine import keywords, templates
from engine.actions import FieldSpec, action_type
from engine.durations import format_duration, parse_duration
from engine.errors import InvalidWorkflow, Problem, UnknownType
from engine.recipients import PARTIES, PARTY_TABLES, Address
from engine.triggers import Param, param_names, trigger_type
from engine.triggers import names as trigger_names
from engine.variants import DEFAULT, normal
from engine.windows import WindowError, parse_window
from engine.workflow import FILTER_IDS, FILTER_NAMES, STARTED_BY, Action, Filters, Trigger, Workflow

_LOCALE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
# The booking columns a filter reads; it has no data when every one is absent.
_FILTER_COLUMNS = {"started_by": ("appointments.started_by",), "locales": ("customers.locale", "appointments.locale")}


class Checker:
    """Collects problems while a document is read."""

    def __init__(self, trigger_name: str, absent: dict[str, str] | None = None):
        self.problems: list[Problem] = []
        self.trigger_type = trigger_name
        self.keywords = keywords.available(trigger_name)
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

    def variants(self, value: Any, place: str, one: Callable[[Any, str], Any]) -> Any:
        """A value, or a mapping of locale to value with a ``default``: each checked by *one*, at its place
        (``actions[0].subject.fr``)."""
        if not isinstance(value, dict):
            return one(value, place)
        if DEFAULT not in value:
            self.add(place, f"per-locale variants need a '{DEFAULT}' (sent to every other locale); "
                            f"got {', '.join(map(str, value)) or 'none'}")
        seen: dict[str, str] = {}
        checked = {}
        for key, item in value.items():
            here = _join(place, str(key))
            if key != DEFAULT and not (isinstance(key, str) and _LOCALE.match(key)):
                self.add(here, f"not a locale like 'fr' or 'fr_CA', nor '{DEFAULT}': {key!r}")
            elif key != DEFAULT and normal(key) in seen:
                self.add(here, f"the same locale as {seen[normal(key)]!r}")
            else:
                seen[normal(str(key))] = str(key)
            checked[str(key)] = one(item, here)
        return checked


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
    named = trigger_doc.get("type") if isinstance(trigger_doc, dict) else None
    # an unknown trigger is reported once, at trigger.type; the templates are checked as the first one's
    check = Checker(named if named in trigger_names() else trigger_names()[0],
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


def _name(check: Checker, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        check.add("name", "required: a non-empty name")
        return ""
    return value.strip()


def _trigger(check: Checker, value: Any) -> Trigger | None:
    if value is None:
        check.add("trigger", "required: a mapping with a 'type'")
        return None
    doc = check.mapping(value, "trigger", ("type", *param_names()))
    try:
        kind = trigger_type(doc.get("type"))
    except UnknownType as error:
        check.add("trigger.type", str(error))
        return None
    for key in doc:
        if key != "type" and key not in kind.params and key in param_names():
            check.add(f"trigger.{key}", f"not a parameter of {kind.name}")
    params: dict[str, Any] = {}
    for name, spec in kind.params.items():
        place = f"trigger.{name}"
        if name not in doc:
            if spec.required:
                check.add(place, f"required for {kind.name}" + (f" (e.g. {spec.example})" if spec.example else ""))
            params[name] = None
        else:
            params[name] = _param(check, doc[name], place, spec)
    kind.check(check, params)
    trigger = Trigger(type=kind.name, params=params)
    check.keywords = kind.keywords_for(trigger) or check.keywords  # a schedule's depend on its for_each
    return trigger


def _param(check: Checker, value: Any, place: str, spec: Param) -> Any:
    if spec.form == "duration":
        duration = _duration(check, value, place)
        if spec.positive and duration is not None and duration.total_seconds() <= 0:
            check.add(place, "must be positive")
        return duration
    if spec.form == "flag":
        if not isinstance(value, bool):
            check.add(place, f"expected true or false, got {_kind(value)}")
        return value if isinstance(value, bool) else None
    if spec.form in ("text", "choice"):
        if not isinstance(value, str) or not value.strip():
            check.add(place, f"expected text, got {_kind(value)}")
            return None
        if spec.form == "choice" and value.strip() not in spec.choices:
            check.add(place, f"expected one of: {', '.join(spec.choices)}; got {value!r}")
        return value.strip()
    items = check.string_list(value, place)
    if spec.form == "words":
        return tuple(items) if items else None
    wrong = [item for item in items or () if item not in spec.choices]
    if wrong or not items:
        check.add(place, f"expected a non-empty list of {', '.join(spec.choices)}; got {value!r}")
        return None
    return tuple(choice for choice in spec.choices if choice in items)


def _duration(check: Checker, value: Any, place: str):
    try:
        return parse_duration(value)
    except ValueError as error:
        check.add(place, str(error))
        return None


def _filters(check: Checker, value: Any, trigger: Trigger | None, known: KnownIds | None) -> Filters:
    doc = check.mapping(value, "filters", FILTER_NAMES)
    parsed: dict[str, tuple] = {}
    for name in FILTER_NAMES:
        if name not in doc:
            continue
        place = f"filters.{name}"
        allowed = trigger_type(trigger.type).allowed_filters if trigger is not None else FILTER_NAMES
        if name not in allowed:
            why = "has no appointment" if not _has_appointment(trigger) and name != "locales" else "has no customer"
            check.add(place, f"{trigger.type} {why}: only {', '.join(repr(a) for a in allowed)} applies")
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


def _filter_data(check: Checker, name: str, place: str, trigger: Trigger | None) -> None:
    """A filter on columns the booking data has none of would hold for every appointment or for none."""
    columns = _FILTER_COLUMNS.get(name, ())
    if not _has_appointment(trigger):
        columns = tuple(c for c in columns if c.startswith("customers."))
    if columns and all(c in check.absent for c in columns):
        why = "; ".join(f"{c}: {check.absent[c]}" for c in columns)
        check.add(place, f"filter '{name}' has no data here: {why}")


def _ids(check: Checker, items: list[str], place: str, existing: frozenset[int] | None) -> tuple[int, ...]:
    ids = []
    for index, item in enumerate(items):
        if not item.lstrip("-").isdigit():
            check.add(f"{place}[{index}]", f"expected an id (integer), got {item!r}")
        elif existing is not None and int(item) not in existing:
            check.add(f"{place}[{index}]", f"no {place.split('.')[1].rstrip('s')} with id {item}")
        else:
            ids.append(int(item))
    return tuple(ids)


def _words(check: Checker, name: str, items: list[str], place: str) -> None:
    for index, item in enumerate(items):
        if name == "started_by" and item not in STARTED_BY:
            check.add(f"{place}[{index}]", f"expected 'frontend' or 'backend', got {item!r}")
        if name == "locales" and not _LOCALE.match(item):
            check.add(f"{place}[{index}]", f"not a locale like 'en' or 'fr_FR': {item!r}")


def _actions(check: Checker, value: Any, trigger: Trigger | None, known: KnownIds | None) -> tuple[Action, ...]:
    if not isinstance(value, list) or not value:
        check.add("actions", "required: a non-empty list of actions")
        return ()
    actions = []
    for index, doc in enumerate(value):
        action = _action(check, doc, f"actions[{index}]", trigger, known)
        if action is not None:
            actions.append(action)
    return tuple(actions)


def _has_appointment(trigger: Trigger | None) -> bool:
    return trigger is None or trigger_type(trigger.type).has_appointment


def _action(check: Checker, doc: Any, place: str, trigger: Trigger | None,
            known: KnownIds | None = None) -> Action | None:
    if not isinstance(doc, dict):
        check.add(place, f"expected a mapping with a 'type', got {_kind(doc)}")
        return None
    try:
        kind = action_type(doc.get("type"))
    except UnknownType as error:
        check.add(f"{place}.type", str(error))
        return None
    specs = kind.field_specs()
    check.mapping(doc, place, ("type", *specs))
    no_appointment = not _has_appointment(trigger)
    if kind.needs_appointment and no_appointment:
        check.add(f"{place}.type", f"{kind.name} needs an appointment; {trigger.type} has none")
    fields = {}
    for name, spec in specs.items():
        if name not in doc or doc[name] is None:
            if spec.required:
                check.add(f"{place}.{name}", f"required for {kind.name}")
            continue
        fields[name] = _field(check, doc[name], f"{place}.{name}", spec, trigger)
    kind.check(check, fields, place, known)
    return Action(type=kind.name, fields=fields)


def _field(check: Checker, value: Any, place: str, spec: FieldSpec, trigger: Trigger | None) -> Any:
    if spec.form == "template":
        return check.variants(value, place, check.template) if spec.variants else check.template(value, place)
    if spec.form == "variables":
        return _variables(check, value, place)
    if spec.form == "literal":
        one = functools.partial(_literal, check, spec=spec)
        return check.variants(value, place, one) if spec.variants else one(value, place)
    if spec.form == "offset":
        duration = _duration(check, value, place)
        return format_duration(duration) if duration is not None else None
    if spec.form == "recipients":
        return _recipients(check, value, place, spec.address, trigger)
    if spec.form == "template_list":
        items = check.string_list(value, place) or []
        return [check.template(item, f"{place}[{index}]") or item for index, item in enumerate(items)]
    if spec.form == "choice":
        text = str(value).upper() if spec.choices[0].isupper() else str(value).lower()
        if text not in spec.choices:
            check.add(place, f"expected one of: {', '.join(spec.choices)}; got {value!r}")
        return text
    if spec.form == "duration":
        duration = _duration(check, value, place)
        if duration is not None and duration.total_seconds() <= 0:
            check.add(place, "must be positive")
        return format_duration(duration) if duration is not None else None
    if spec.form == "url":
        return _url(check, value, place)
    if spec.form == "window":
        return _window(check, value, place)
    if spec.form == "headers":
        return _headers(check, value, place)
    return _json_templates(check, value, place)


def _window(check: Checker, value: Any, place: str) -> dict[str, str] | bool | None:
    """A send window, stored as ``{from, to}``; ``false`` (or ``none``) for none, even where a default is set."""
    try:
        window = parse_window(value)
    except WindowError as error:
        check.add(place, str(error))
        return None
    return window.as_document() if window is not None else False


def _variables(check: Checker, value: Any, place: str) -> dict[str, Any]:
    """Numbered variables (``"1"``, ``"2"``…, as WhatsApp templates number them), each a text or variants."""
    if not isinstance(value, dict) or not value:
        check.add(place, f"expected a mapping of variable numbers (\"1\", \"2\"…) to texts, got {_kind(value)}")
        return {}
    variables = {}
    for key, text in value.items():
        here = _join(place, str(key))
        if isinstance(key, bool) or not str(key).isdigit() or int(key) < 1:
            check.add(here, f"not a variable number (\"1\", \"2\"…): {key!r}")
        text = str(text) if isinstance(text, (int, float)) and not isinstance(text, bool) else text
        variables[str(key)] = check.variants(text, here, check.template)
    return variables


def _literal(check: Checker, value: Any, place: str, spec: FieldSpec) -> str | None:
    if not isinstance(value, str) or not re.fullmatch(spec.pattern, value.strip()):
        check.add(place, f"expected {spec.example}, got {value!r}")
        return None
    return value.strip()


def _recipients(check: Checker, value: Any, place: str, address: Address, trigger: Trigger | None) -> list[str]:
    items = [templates.from_booknetic(item) for item in check.string_list(value, place) or []]
    expected = f"not {address.described}, 'customer', 'staff' or template"
    parties = trigger_type(trigger.type).parties(trigger) if trigger is not None else PARTIES
    for index, item in enumerate(items):
        here = f"{place}[{index}]"
        column = f"{PARTY_TABLES.get(item)}.{address.column}"
        if item in PARTIES and item not in parties:
            check.add(here, f"{trigger.type} has no {item}" + (
                f" (for_each: {trigger.params.get('for_each')})" if "for_each" in trigger.params else ""))
        elif item in PARTIES and column in check.absent:
            check.add(here, f"'{item}' has no {address.noun} here: {column}: {check.absent[column]}")
        elif item in PARTIES:
            continue
        elif templates.is_template(item):
            check.template(item, here)
        elif not address.valid(item):
            check.add(here, f"{expected}: {item!r}")
    return items


def _url(check: Checker, value: Any, place: str) -> str | None:
    text = check.template(value, place)
    if text is None or templates.is_template(text):
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        check.add(place, f"not an http(s) URL: {text!r}")
    return text


def _headers(check: Checker, value: Any, place: str) -> dict[str, str]:
    if not isinstance(value, dict):
        check.add(place, f"expected a mapping of header names to text, got {_kind(value)}")
        return {}
    headers = {}
    for name, text in value.items():
        rendered = check.template(str(text) if isinstance(text, (int, float)) else text, f"{place}.{name}")
        headers[str(name)] = rendered
    return headers


def _json_templates(check: Checker, value: Any, place: str) -> Any:
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


def warnings(workflow: Workflow) -> list[Problem]:
    """What will likely be refused when *workflow* sends, although it is valid (``workflow add`` and
    ``validate`` print these and go on)."""
    trigger = trigger_type(workflow.trigger.type)
    return [Problem(place=f"actions[{n}].{field}", message=message)
            for n, action in enumerate(workflow.actions)
            for field, message in action_type(action.type).advise(action.fields, trigger)]
