"""Admitting a workflow and previewing one: pure, no database (the command line's use is in test_cli_workflows)."""

from __future__ import annotations

import datetime as dt

from channels.netguard import literal_refusal
from db.records import Appointment, Booking, Customer, KnownIds
from engine.admission import Admission, check_all, check_document, check_text
from engine.preview import filter_checks, filter_lines, render_preview
from engine.validation import parse_workflow

UTC = dt.timezone.utc
START = dt.datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
KNOWN = KnownIds(locations=frozenset({1}), services=frozenset({1}), staff=frozenset({1}))


def rules(stored: dict[str, int] | None = None, *, private: bool = False) -> Admission:
    return Admission(known=KNOWN, workflow_named=(stored or {}).get, refusal=literal_refusal,
                     allowed=lambda setting: private)


def document(name: str = "w", url: str = "https://hooks.example.test/x", **action) -> dict:
    return {"name": name, "trigger": {"type": "appointment_created"},
            "actions": [{"type": "webhook", "url": url, "body": "{{ appointment_id }}", **action}]}


def test_a_valid_document_is_admitted_and_its_name_taken():
    names: set[str] = set()
    workflow, problems = check_document(document(), rules(), names)
    assert problems == [] and workflow.name == "w" and names == {"w"}


def test_a_webhook_to_a_literal_private_address_is_refused_unless_the_configuration_allows_it():
    _, problems = check_document(document(url="http://10.0.0.5/hook"), rules(), set())
    assert [(p.place, p.message) for p in problems] == [(
        "actions[0].url", "10.0.0.5 is a private address, not a public one: webhooks to private addresses are "
                          "refused ([webhook] allow_private_addresses = false)")]
    assert check_document(document(url="http://10.0.0.5/hook"), rules(private=True), set())[1] == []
    assert check_document(document(url="http://intranet.test/hook"), rules(), set())[1] == []  # a name: at send


def test_a_name_already_stored_or_met_earlier_is_refused_except_where_it_is_replaced():
    stored = rules({"w": 4})
    assert [p.message for p in check_document(document(), stored, set())[1]] == [
        "a workflow named 'w' already exists (workflow 4)"]
    assert check_document(document(), stored, set(), replacing=4)[1] == []
    assert check_document(document(), stored, set(), by_name=True)[1] == []
    assert [p.message for p in check_document(document(), rules(), {"w"})[1]] == [
        "a workflow named 'w' already exists (earlier in this command)"]


def test_every_text_is_checked_and_names_are_unique_among_them():
    checked = check_all([("a.yaml", "name: w\n"), ("b.yaml", "name: [\n"), ("c.yaml", "name: w\n")], rules())
    assert [c.source for c in checked] == ["a.yaml", "b.yaml", "c.yaml"]
    assert all(c.problems for c in checked) and checked[1].workflow is None
    assert check_text("name: [\n", rules(), set())[0] is None


def _booking(locale: str = "en") -> Booking:
    appointment = Appointment(id=7, customer_id=1, service_id=1, staff_id=1, location_id=1, starts_at=START,
                              ends_at=START + dt.timedelta(minutes=45), status="approved", started_by="frontend",
                              locale=None, custom={}, created_at=START, updated_at=START)
    customer = Customer(id=1, first_name="Ada", last_name="L", email="ada@example.test", phone=None, locale=locale,
                        timezone=None, telegram_chat_id=None, custom={}, created_at=START)
    return Booking(appointment=appointment, customer=customer)


def test_a_preview_shows_each_filter_and_each_rendered_action():
    workflow = parse_workflow({**document(), "filters": {"locales": ["fr"]}})
    assert filter_lines(filter_checks(workflow, _booking())) == [
        "filters:", "  locales: does not match: wants fr; the appointment has 'en'"]
    assert filter_lines([]) == ["filters: none (every appointment matches)"]
    shown = render_preview(workflow, _booking(), company={}, now=START)
    assert not shown.failed and shown.lines[0] == "--- actions[0] webhook"
    assert "body: 7" in shown.lines


def test_an_action_that_fails_to_render_is_shown_with_its_error_and_the_preview_fails():
    workflow = parse_workflow({"name": "w", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "webhook", "url": "https://hooks.example.test/x", "body": "{{ 1 / 0 }}"},
        {"type": "webhook", "url": "https://hooks.example.test/y", "body": "{{ appointment_id }}"}]})
    shown = render_preview(workflow, _booking(), company={}, now=START)
    assert shown.failed
    assert shown.lines[0] == "--- actions[0] webhook" and shown.lines[1].startswith("error: ")
    assert "--- actions[1] webhook" in shown.lines and "body: 7" in shown.lines
