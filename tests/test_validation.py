"""Workflow validation: every mistake reported with its place, pure logic without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from db.records import KnownIds
from engine.document import dump_yaml, load_yaml, to_document
from engine.durations import format_duration, parse_duration
from engine.errors import InvalidWorkflow
from engine.validation import parse_workflow


def problems(document, known=None) -> list[str]:
    with pytest.raises(InvalidWorkflow) as caught:
        parse_workflow(document, known=known)
    return [str(p) for p in caught.value.problems]


def workflow(**overrides):
    document = {
        "name": "w",
        "trigger": {"type": "appointment_created"},
        "actions": [{"type": "email", "to": ["customer"], "subject": "Hi", "body": "Hello"}],
    }
    document.update(overrides)
    return document


@pytest.mark.parametrize("text, seconds", [
    ("-30m", -1800), ("0", 0), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("45s", 45), ("250ms", 0.25),
    ("+15m", 900), (30, 1800), (-10, -600), ("30", 1800),
])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["30x", "m", "", "1.5h", "--3m", True, None, [1]])
def test_bad_durations_say_what_is_accepted(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("seconds, text", [(-1800, "-30m"), (0, "0"), (7200, "2h"), (90, "90s"),
                                           (86400 * 14, "2w"), (5400, "90m"), (1.5, "1500ms")])
def test_durations_format_shortest(seconds, text):
    assert format_duration(dt.timedelta(seconds=seconds)) == text


def test_a_valid_workflow_parses():
    parsed = parse_workflow(workflow(
        trigger={"type": "appointment_ends", "offset": "-30m"},
        filters={"services": [3], "statuses": "approved", "locales": ["en", "fr_FR"]},
    ))
    assert parsed.trigger.offset == dt.timedelta(minutes=-30)
    assert parsed.filters.services == (3,)
    assert parsed.filters.statuses == ("approved",)
    assert parsed.filters.locations is None


def test_every_problem_is_reported_with_its_place():
    found = problems({
        "name": "",
        "trigger": {"type": "appointment_starts", "offset": "soon"},
        "filters": {"started_by": ["kiosk"], "colour": ["red"]},
        "actions": [
            {"type": "email", "to": ["customer", "staff", "bob"], "subject": "{{ custmer_first_name }}",
             "body": "{% if %}"},
            {"type": "fax", "to": ["+15551234567"]},
            {"type": "sms", "to": ["+1555"], "body": "x"},
        ],
    })
    assert found == [
        "name: required: a non-empty name",
        "trigger.offset: 'soon' is not a duration: use an integer with s, m, h, d or w "
        "(e.g. -30m, 2h, 1d); a bare integer means minutes",
        "filters.colour: unknown field (expected one of: locations, services, staff, statuses, "
        "started_by, locales)",
        "filters.started_by[0]: expected 'frontend' or 'backend', got 'kiosk'",
        "actions[0].to[2]: not an email address, 'customer', 'staff' or template: 'bob'",
        "actions[0].subject: unknown keyword 'custmer_first_name' (did you mean 'customer_first_name'?)",
        "actions[0].body: template error on line 1: Expected an expression, got 'end of statement block'",
        "actions[1].type: unknown action 'fax' (expected one of: email, sms, whatsapp, telegram, "
        "set_status, webhook)",
        "actions[2].to[0]: not a phone number in E.164 form (+15551234567), 'customer', 'staff' "
        "or template: '+1555'",
    ]


def test_unknown_trigger_type():
    assert problems(workflow(trigger={"type": "appointment_booked"})) == [
        "trigger.type: unknown trigger 'appointment_booked' (expected one of: appointment_created, "
        "appointment_rescheduled, appointment_status_changed, customer_created, appointment_starts, "
        "appointment_ends, schedule, customer_birthday, customer_inactive, customer_replied, message_undelivered)"]


def test_offset_is_required_and_only_for_time_triggers():
    assert problems(workflow(trigger={"type": "appointment_starts"})) == [
        "trigger.offset: required for appointment_starts (e.g. -30m, 0, 2h)"]
    assert problems(workflow(trigger={"type": "appointment_created", "offset": "1h"})) == [
        "trigger.offset: not a parameter of appointment_created"]


def test_keywords_depend_on_the_trigger():
    status_body = [{"type": "email", "to": ["customer"], "subject": "s", "body": "{{ old_status }}"}]
    parse_workflow(workflow(trigger={"type": "appointment_status_changed", "to": ["approved"]},
                            actions=status_body))
    assert problems(workflow(actions=status_body)) == [
        "actions[0].body: keyword 'old_status' is not available for appointment_created"]
    customer_body = [{"type": "email", "to": ["customer"], "subject": "{{ service_name }}", "body": "b"}]
    assert problems(workflow(trigger={"type": "customer_created"}, actions=customer_body)) == [
        "actions[0].subject: keyword 'service_name' is not available for customer_created"]


def test_customer_created_takes_only_locales_and_no_staff_or_status():
    found = problems(workflow(
        trigger={"type": "customer_created"},
        filters={"locales": ["en"], "services": [1]},
        actions=[{"type": "set_status", "status": "approved"},
                 {"type": "sms", "to": ["staff"], "body": "x"}],
    ))
    assert found == [
        "filters.services: customer_created has no appointment: only 'locales' applies",
        "actions[0].type: set_status needs an appointment; customer_created has none",
        "actions[1].to[0]: customer_created has no staff",
    ]


def test_filters_naming_missing_ids_are_errors():
    known = KnownIds(locations=frozenset({1}), services=frozenset({1, 2}), staff=frozenset())
    found = problems(workflow(filters={"locations": [1, 9], "services": ["two"], "staff": [4]}), known)
    assert found == [
        "filters.locations[1]: no location with id 9",
        "filters.services[0]: expected an id (integer), got 'two'",
        "filters.staff[0]: no staff with id 4",
    ]


def test_webhook_fields():
    found = problems(workflow(actions=[
        {"type": "webhook", "url": "ftp://x", "method": "TRACE", "body": "b", "json": {"a": 1},
         "timeout": "-1s"},
        {"type": "webhook", "url": "https://h.example/{{ nope }}", "headers": ["x"]},
    ]))
    assert found == [
        "actions[0].url: not an http(s) URL: 'ftp://x'",
        "actions[0].method: expected one of: POST, PUT, PATCH, GET, DELETE; got 'TRACE'",
        "actions[0].timeout: must be positive",
        "actions[0]: give 'body' or 'json', not both",
        "actions[1].url: unknown keyword 'nope'",
        "actions[1].headers: expected a mapping of header names to text, got list",
    ]


def email(body: str) -> dict:
    return workflow(actions=[{"type": "email", "to": ["customer"], "subject": "s", "body": body}])


UNSAFE = "not allowed in a template (line 1): access to attribute '{}' is unsafe"


# Refused when the workflow is added, not dead at each send with "cannot render".
@pytest.mark.parametrize("body, message", [
    ("{{ ''.__class__ }}", UNSAFE.format("__class__")),
    ("{{ customer_first_name.__class__.__mro__ }}", UNSAFE.format("__class__")),
    ("{{ customer_first_name._private }}", UNSAFE.format("_private")),
    ("{{ ''['__class__'] }}", UNSAFE.format("__class__")),
    ("{{ appointment.__class__ }}", UNSAFE.format("__class__")),
    ("{{ cycler.__init__.__globals__ }}", UNSAFE.format("__init__")),
    ("{{ appointment|attr('__class__') }}", UNSAFE.format("__class__")),
    ("{{ [].append(1) }}", UNSAFE.format("append")),
    ("{{ appointment.custom.update({'a': 1}) if appointment.update }}", UNSAFE.format("update")),
    ("Hello,\n{{ range(10**9)|length }}",
     "always fails (line 2): Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000)."),
    ("{{ range(-10**5, 10**5)|length }}",
     "always fails (line 1): Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000)."),
    ("{{ 'a' * 10**9 }}",
     "always fails (line 1): template output limit: a repeated value longer than 100000 characters"),
    ("{{ 2 ** (10**9) }}", "always fails (line 1): powers above 4096 bits are refused in templates"),
    ("{{ 'a' * 60000 + 'b' * 60000 }}",
     "always fails (line 1): template output limit: a joined value longer than 100000 characters"),
    ("{{ '%1000000000d' % 1 }}",
     "always fails (line 1): template output limit: a % field longer than 100000 characters"),
])
def test_a_template_the_sandbox_always_refuses_is_an_error_at_its_place(body, message):
    assert problems(email(body)) == [f"actions[0].body: {message}"]


def test_every_template_field_is_checked_for_what_the_sandbox_refuses():
    found = problems(workflow(actions=[
        {"type": "webhook", "url": "https://h.example/{{ ''.__class__ }}",
         "json": {"id": "{{ appointment_id }}", "tags": ["{{ 'x' * 10**9 }}"]}},
        {"type": "sms", "to": ["{{ customer._secret }}"], "body": "{{ customr_phone.__class__ }}"},
    ]))
    assert found == [
        f"actions[0].url: {UNSAFE.format('__class__')}",
        "actions[0].json.tags[0]: always fails (line 1): template output limit: a repeated value longer than "
        "100000 characters",
        f"actions[1].to[0]: {UNSAFE.format('_secret')}",
        "actions[1].body: unknown keyword 'customr_phone' (did you mean 'customer_phone'?)",
    ]


@pytest.mark.parametrize("body", [
    "{{ customer_first_name|upper }}",
    "{{ range(3)|join(',') }}",
    "{{ 'ab' * 3 }}",
    "{{ range(100000)|length }} {{ 'a' * 100000 }} {{ 2 ** 2048 }}",  # at the bounds, not past them
    "{{ 2 ** 10**9 }}",  # Jinja groups ** from the left: (2 ** 10) ** 9
    "{{ customer_first_name * 10**5 }}",  # depends on the booking: an empty name renders
    "{{ appointment.custom._ref }}",  # a custom field's key, which the sandbox gives
    "{% set customer_first_name = {'_a': 1} %}{{ customer_first_name._a }}",  # the template's own value
    "{% macro range(n) %}{{ n }}{% endmacro %}{{ range(10**9) }}",
])
def test_templates_the_sandbox_can_render_are_accepted(body):
    assert parse_workflow(email(body)).actions[0].fields["body"] == body


def test_missing_and_unknown_action_fields():
    assert problems(workflow(actions=[{"type": "telegram", "txt": "x"}])) == [
        "actions[0].txt: unknown field (expected one of: type, chat_id, text, attachments, after_crash, "
        "send_window)",
        "actions[0].chat_id: required for telegram",
        "actions[0].text: required for telegram",
    ]


@pytest.mark.parametrize("document, expected", [
    ([1, 2], "a workflow is a mapping, got list"),
    ({"name": "x", "trigger": {"type": "appointment_created"}}, "actions: required: a non-empty list of actions"),
    ({"name": "x", "actions": [{"type": "set_status", "status": "a"}]}, "trigger: required: a mapping with a 'type'"),
])
def test_structural_problems(document, expected):
    assert expected in problems(document)


def test_invalid_yaml_reports_line_and_column():
    with pytest.raises(InvalidWorkflow) as caught:
        load_yaml("name: x\ntrigger: {type: [\n")
    assert str(caught.value).startswith("line 3, column 1: invalid YAML")


def test_canonical_document_round_trips():
    parsed = parse_workflow(workflow(trigger={"type": "appointment_starts", "offset": -60, "grace": "120m"},
                                     filters={"statuses": "approved"}))
    document = to_document(parsed)
    assert document["trigger"] == {"type": "appointment_starts", "offset": "-1h", "grace": "2h"}
    assert parse_workflow(load_yaml(dump_yaml(document))) == parsed
