"""Booknetic's workflows as apptflow documents: the translation alone, on rows as Booknetic saves them."""

from __future__ import annotations

import pytest

from db.booknetic import BookneticAction, BookneticWorkflow
from engine.booknetic import recipients, translate
from engine.validation import parse_workflow


def workflow(when: str, data: dict, *actions: tuple[str, dict], active: bool = True) -> BookneticWorkflow:
    return BookneticWorkflow(id=5, name="W", when=when, data=data, active=active, tenant_id=None, actions=tuple(
        BookneticAction(id=n, driver=driver, data=d, active=d.pop("_active", True))
        for n, (driver, d) in enumerate(actions, start=1)))


EMAIL = ("email", {"to": "{customer_email}", "subject": "s", "body": "b", "attachments": ""})  # read, never changed


@pytest.mark.parametrize("sign, value, unit, offset", [
    ("before", "30", "minute", "-30m"), ("after", "2", "hour", "2h"), ("before", "1", "day", "-1d"),
    ("after", "0", "minute", "0m")])
def test_an_offset_is_signed_as_booknetic_counts_it(sign, value, unit, offset):
    translated = translate(workflow("booking_ends", {"offset_sign": sign, "offset_value": value,
                                                     "offset_type": unit}, EMAIL))
    assert translated.document["trigger"] == {"type": "appointment_ends", "offset": offset}
    parse_workflow(translated.document)  # and apptflow takes it


def test_a_status_change_reads_prev_statuses_as_from_and_statuses_as_to():
    translated = translate(workflow("booking_status_changed", {"prev_statuses": ["pending"], "statuses": ["approved"],
                                                               "staffs": ["2", "3"], "locale": "tr",
                                                               "called_from": "backend"}, EMAIL))
    assert translated.document["trigger"] == {"type": "appointment_status_changed", "from": ["pending"],
                                              "to": ["approved"]}
    assert translated.document["filters"] == {"staff": [2, 3], "locales": ["tr"], "started_by": ["backend"]}


def test_empty_lists_and_an_empty_data_mean_any():
    translated = translate(workflow("booking_new", {"locations": [], "services": [], "staffs": [], "statuses": [],
                                                    "locale": "", "called_from": ""}, EMAIL))
    assert "filters" not in translated.document
    assert translate(workflow("booking_rescheduled", {}, EMAIL)).document["trigger"] == {
        "type": "appointment_rescheduled"}


def test_recipients_become_words_keywords_and_literals_once_each():
    assert recipients("{customer_email}, {staff_email},boss@salon.test, {customer_email}") == [
        "customer", "staff", "boss@salon.test"]
    assert recipients("{company_phone}") == ["{{ company_phone }}"]
    assert recipients("") == []


def test_a_form_webhook_url_encodes_its_text_now_and_its_keywords_when_rendered():
    translated = translate(workflow("booking_new", {}, ("webhook", {
        "request_method": "put", "url": "https://h.test/{appointment_id}", "headers": [],
        "content_type": "FORM_DATA", "body": {"who": "{customer_full_name} & co", "n": "1"}})))
    [action] = translated.document["actions"]
    assert action["method"] == "PUT" and action["headers"] == {"Content-Type": "application/x-www-form-urlencoded"}
    assert action["body"] == "who={{ customer_full_name | urlencode }}%20%26%20co&n=1"


@pytest.mark.parametrize("when, reason", [
    ("appointment_paid", "payments"), ("customer_forgot_password", "passwords"), ("tenant_paid", "SaaS"),
    ("whatever", "not a Booknetic event")])
def test_an_event_without_an_equivalent_is_refused_with_why(when, reason):
    translated = translate(workflow(when, {}, EMAIL))
    assert translated.document is None and reason in translated.problems[0]


def test_a_switched_off_action_is_left_out_and_a_workflow_of_none_is_refused():
    def off():
        return "email", {"to": "{customer_email}", "subject": "off", "body": "b", "_active": False}
    translated = translate(workflow("booking_new", {}, EMAIL, off()))
    assert len(translated.document["actions"]) == 1 and "switched off in Booknetic" in translated.notes[0]
    assert translate(workflow("booking_new", {}, off())).problems == ("no action that is switched on",)
    assert translate(workflow("booking_new", {}, EMAIL, active=False)).document["enabled"] is False


def test_set_status_on_other_appointments_has_no_equivalent():
    own = translate(workflow("booking_new", {}, ("booking-set-status", {
        "appointment_ids": "{appointment_id}", "status": "approved", "run_workflows": False})))
    assert own.document["actions"] == [{"type": "set_status", "status": "approved"}]
    assert "apptflow's status-changed workflows do see it" in own.notes[0]
    other = translate(workflow("booking_new", {}, ("booking-set-status", {"appointment_ids": "12,13",
                                                                          "status": "canceled"})))
    assert other.document is None and "the workflow's own appointment only" in other.problems[0]
