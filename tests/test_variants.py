"""Per-locale texts, and WhatsApp's approved templates: added with the CLI, driven by plain SQL, sent to a real
SMTP server and to a stand-in of Twilio's API through the real twilio client, on every database."""

from __future__ import annotations

import json
import re
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
import yaml
from click.testing import CliRunner

from db.booknetic import BookneticAction, BookneticWorkflow
from engine.booknetic import merge_locales, translate
from engine.document import dump_yaml, load_yaml, to_document
from engine.errors import InvalidWorkflow
from engine.validation import parse_workflow, warnings
from engine.variants import choose
from scheduler.cli import main
from tests.booking import book, insert, seed
from tests.channels.servers import (
    ACCOUNT_SID, AUTH_TOKEN, WHATSAPP_FROM, HttpServer, SmtpRecorder, smtp_controller, twilio_api, twilio_error,
)
from tests.conftest import sql
from tests.pipeline import NOW, Pipeline, make_config

START, END = "2026-12-01T10:00:00+00:00", "2026-12-01T10:45:00+00:00"
SUBJECTS = {
    "it": "Promemoria: {{ service_name }} alle {{ appointment_start_time }}",
    "fr": "Rappel : {{ service_name }} à {{ appointment_start_time }}",
    "default": "Reminder: {{ service_name }} at {{ appointment_start_time }}",
}
TEMPLATE_IT, TEMPLATE_DEFAULT = "HX" + "1" * 32, "HX" + "a" * 32


def problems(document) -> list[str]:
    with pytest.raises(InvalidWorkflow) as caught:
        parse_workflow(document)
    return [str(p) for p in caught.value.problems]


def reminder(**action) -> dict:
    return {"name": "Confirmation", "trigger": {"type": "appointment_created"},
            "actions": [{"type": "email", "to": ["customer"], "subject": SUBJECTS,
                         "body": {"it": "Ciao {{ customer_first_name }}", "default": "Hello {{ customer_first_name }}"},
                         **action}]}


def whatsapp(**action) -> dict:
    return {"name": "WhatsApp", "trigger": {"type": "appointment_created"},
            "actions": [{"type": "whatsapp", "to": ["customer"], **action}]}


@pytest.fixture
def cli(db_url, tmp_path):
    """`apptflow` with the test database: cli("workflow", "add", document) writes the document to a file first."""
    runner = CliRunner()

    def run(*args, env=None):
        args = list(args)
        for n, arg in enumerate(args):
            if isinstance(arg, dict):
                args[n] = str(tmp_path / f"workflow{n}.yaml")
                (tmp_path / f"workflow{n}.yaml").write_text(yaml.safe_dump(arg, allow_unicode=True))
        return runner.invoke(main, args, env={"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": "", **(env or {})})
    return run


@pytest.fixture
def smtp():
    recorder = SmtpRecorder()
    controller = smtp_controller(recorder)
    controller.start()
    yield recorder, controller.port
    controller.stop()


@pytest.fixture
def twilio():
    server = HttpServer(twilio_api).start()
    yield server
    server.stop()


def customer(engine, first_name: str, locale: str | None) -> int:
    address = first_name.lower().replace("é", "e")
    return insert(engine, "customers", first_name=first_name, last_name="X", email=f"{address}@example.test",
                  phone="+15550002222", locale=locale)


def booked_by(engine, ids: dict, customer_id: int, **extra) -> int:
    return book(engine, {**ids, "customer": customer_id}, starts_at=START, ends_at=END, **extra)


# --- choosing a variant ------------------------------------------------------------------------------------

@pytest.mark.parametrize("locale, key", [
    ("fr_CA", "fr"), ("fr-ca", "fr"), ("it", "it"), ("it_CH", "it_CH"), ("IT_ch", "it_CH"), ("de", "default"),
    (None, "default"), ("", "default"), ("f", "default")])
def test_the_exact_locale_then_its_language_then_the_default(locale, key):
    assert choose({"it": "a", "it_CH": "b", "fr": "c", "default": "d"}, locale) == key


# --- validation and export ---------------------------------------------------------------------------------

def test_every_variant_is_checked_like_a_template_with_its_locale_in_the_place():
    document = reminder()
    document["actions"][0]["subject"] = {**SUBJECTS, "fr": "Rappel : {{ servise_name }}", "xx-": "x"}
    found = problems(document)
    assert any(p.startswith("actions[0].subject.fr: unknown keyword 'servise_name'") for p in found), found
    assert "actions[0].subject.xx-: not a locale like 'fr' or 'fr_CA', nor 'default': 'xx-'" in found


def test_variants_need_a_default_and_distinct_locales():
    document = reminder()
    document["actions"][0]["subject"] = {"fr_CA": "a", "fr-ca": "b"}
    found = problems(document)
    assert found == ["actions[0].subject: per-locale variants need a 'default' (sent to every other locale); "
                     "got fr_CA, fr-ca", "actions[0].subject.fr-ca: the same locale as 'fr_CA'"]


def test_fields_that_are_not_texts_take_no_variants():
    document = {"name": "s", "trigger": {"type": "appointment_created"},
                "actions": [{"type": "set_status", "status": {"fr": "approved", "default": "approved"}}]}
    assert problems(document) == ["actions[0].status: expected text, got dict"]


def test_export_writes_the_variants_back_as_they_were_written():
    parsed = parse_workflow(reminder())
    assert to_document(parsed)["actions"][0]["subject"] == SUBJECTS
    assert parse_workflow(load_yaml(dump_yaml(to_document(parsed)))) == parsed


# --- through the pipeline ----------------------------------------------------------------------------------

def test_one_workflow_writes_to_each_customer_in_their_locale(engine, db_url, cli, smtp):
    recorder, port = smtp
    ids = seed(engine)
    result = cli("workflow", "add", reminder())
    assert result.exit_code == 0, result.output
    people = {"it": customer(engine, "Giulia", "it"), "fr_CA": customer(engine, "Chloé", "fr_CA"),
              "de": customer(engine, "Dieter", "de")}
    for person in people.values():
        booked_by(engine, ids, person)
    pipeline = Pipeline(engine, make_config(db_url, APPTFLOW_DAEMON_DRY_RUN="false", APPTFLOW_SMTP_HOST="127.0.0.1",
                                            APPTFLOW_SMTP_PORT=str(port)))
    assert [o.status for o in pipeline.run()] == ["sent"] * 3
    pipeline.close()
    received = {message_from_bytes(e.content, policy=default_policy)["To"]: message_from_bytes(
        e.content, policy=default_policy) for e in recorder.envelopes}
    # 10:00 UTC in Paris, written for each customer's locale
    assert received["giulia@example.test"]["Subject"] == "Promemoria: Haircut alle 11:00"
    assert received["giulia@example.test"].get_content().strip() == "Ciao Giulia"
    assert received["chloe@example.test"]["Subject"] == "Rappel : Haircut à 11 h 00"
    assert received["chloe@example.test"].get_content().strip() == "Hello Chloé"  # the body has no fr variant
    assert received["dieter@example.test"]["Subject"] == "Reminder: Haircut at 11:00"
    history = sql(engine, "SELECT recipients, rendered FROM deliveries ORDER BY id")
    assert [recipients for recipients, _ in history] == [
        "giulia@example.test [it]", "chloe@example.test [subject: fr, body: default]", "dieter@example.test [default]"]
    rendered = history[1][1] if isinstance(history[1][1], dict) else json.loads(history[1][1])
    assert rendered["variants"] == {"subject": "fr", "body": "default"}


def test_a_variant_with_an_unknown_keyword_is_refused_at_add_with_its_locale(engine, cli):
    document = reminder()
    document["actions"][0]["subject"] = {**SUBJECTS, "it": "Promemoria: {{ nome_servizio }}"}
    result = cli("workflow", "add", document)
    assert result.exit_code == 1
    assert re.search(r"workflow\d\.yaml: actions\[0\]\.subject\.it: unknown keyword 'nome_servizio'", result.output)
    assert sql(engine, "SELECT count(*) FROM workflows") == [(0,)]


def test_workflow_test_previews_the_variant_of_the_locale_asked_for(engine, cli):
    appointment = booked_by(engine, seed(engine), customer(engine, "Ada", "en"))
    workflow = re.search(r"added workflow (\d+)", cli("workflow", "add", reminder()).output).group(1)
    french = cli("workflow", "test", workflow, "--appointment", str(appointment), "--locale", "fr")
    assert french.exit_code == 0, french.output
    assert "subject: Rappel : Haircut à 11:00" in french.output
    assert 'variants: {"subject": "fr", "body": "default"}' in french.output
    own = cli("workflow", "test", workflow, "--appointment", str(appointment))
    assert "subject: Reminder: Haircut at 11:00 AM" in own.output


# --- WhatsApp: templates, the 24-hour window, 63016 --------------------------------------------------------

def test_whatsapp_takes_a_body_or_a_template_and_variables_only_with_a_template():
    assert problems(whatsapp()) == ["actions[0]: give 'body' (free text) or 'content_sid' (an approved template), "
                                    "one of them"]
    assert problems(whatsapp(body="hi", content_variables={"1": "x"})) == [
        "actions[0].content_variables: fills an approved template: give 'content_sid' too"]
    found = problems(whatsapp(content_sid={"it": "HX123", "default": TEMPLATE_DEFAULT},
                              content_variables={"one": "{{ customer_first_name }}", 2: "{{ servce_name }}"},
                              media=["https://example.com/a.png"]))
    assert "actions[0].content_sid.it: expected a Twilio content template id (HX and 32 hexadecimal digits), " \
           "got 'HX123'" in found
    assert "actions[0].content_variables.one: not a variable number (\"1\", \"2\"…): 'one'" in found
    assert any(p.startswith("actions[0].content_variables.2: unknown keyword 'servce_name'") for p in found)
    assert "actions[0].media: an approved template brings its own media: give media with 'body' only" in found


def test_free_text_whatsapp_is_warned_about_outside_a_conversation():
    assert [str(w) for w in warnings(parse_workflow(whatsapp(body="Hi")))] == [
        "actions[0].body: free-text WhatsApp is delivered only within 24 hours of the customer's last message; "
        "from this trigger WhatsApp will refuse it (Twilio error 63016) unless the customer wrote just before: "
        "send an approved template with content_sid and content_variables instead"]
    assert warnings(parse_workflow(whatsapp(content_sid=TEMPLATE_DEFAULT))) == []


def twilio_config(db_url: str, api: HttpServer):
    return make_config(db_url, APPTFLOW_DAEMON_DRY_RUN="false", APPTFLOW_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                       APPTFLOW_TWILIO_AUTH_TOKEN=AUTH_TOKEN, APPTFLOW_TWILIO_WHATSAPP_FROM=WHATSAPP_FROM,
                       APPTFLOW_TWILIO_API_BASE_URL=api.url)


def test_a_template_whatsapp_reaches_twilio_with_the_template_and_rendered_variables_per_locale(
        engine, db_url, cli, twilio):
    ids = seed(engine)
    result = cli("workflow", "add", whatsapp(
        content_sid={"it": TEMPLATE_IT, "default": TEMPLATE_DEFAULT},
        content_variables={"1": "{{ customer_first_name }}",
                           "2": {"it": "{{ appointment_start_time }} ({{ service_name }})",
                                 "default": "{{ appointment_start_time }}"}}))
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    booked_by(engine, ids, customer(engine, "Giulia", "it_IT"))
    booked_by(engine, ids, customer(engine, "Ada", "en"))
    pipeline = Pipeline(engine, twilio_config(db_url, twilio))
    assert [o.status for o in pipeline.run()] == ["sent", "sent"]
    pipeline.close()
    forms = [request.form for request in twilio.requests]
    assert [form["ContentSid"] for form in forms] == [[TEMPLATE_IT], [TEMPLATE_DEFAULT]]
    assert [json.loads(form["ContentVariables"][0]) for form in forms] == [
        {"1": "Giulia", "2": "11:00 (Haircut)"}, {"1": "Ada", "2": "11:00 AM"}]
    assert all("Body" not in form and form["To"] == ["whatsapp:+15550002222"] for form in forms)
    assert [r for r, in sql(engine, "SELECT recipients FROM deliveries ORDER BY id")] == [
        "+15550002222 [it]", "+15550002222 [default]"]


def test_free_text_whatsapp_is_warned_at_add_and_twilios_63016_makes_it_dead_with_why(engine, db_url, cli, twilio):
    ids = seed(engine)
    document = whatsapp(body="Your {{ service_name }} is tomorrow")
    document["trigger"] = {"type": "appointment_status_changed", "to": ["approved"]}
    validated = cli("workflow", "validate", document)
    assert validated.exit_code == 0, validated.output
    added = cli("workflow", "add", document)
    assert added.exit_code == 0, added.output
    for result in (validated, added):
        assert re.search(r"workflow\d\.yaml: warning: actions\[0\]\.body: free-text WhatsApp is delivered only "
                         r"within 24 hours", result.output)
    assert "added workflow" in added.output
    twilio.script.append(twilio_error(400, 63016, "Failed to send freeform message because you are outside the "
                                                  "allowed window."))
    pipeline = Pipeline(engine, twilio_config(db_url, twilio))
    appointment = booked_by(engine, ids, ids["customer"])
    sql(engine, "UPDATE appointments SET status = 'approved' WHERE id = :id", id=appointment)
    pipeline.run(NOW)
    pipeline.close()
    [(status, error)] = sql(engine, "SELECT status, error FROM deliveries")
    assert status == "dead"
    assert "63016" in error and "outside the 24-hour window" in error
    assert "send an approved template (content_sid with content_variables) instead" in error
    assert len(twilio.requests) == 1  # permanent: not tried again


# --- Booknetic: one workflow per locale, merged ------------------------------------------------------------

def booknetic(number: int, name: str, locale: str, subject: str, body: str, when="booking_new") -> BookneticWorkflow:
    return BookneticWorkflow(id=number, name=name, when=when, data={"locale": locale, "statuses": ["approved"]},
                             active=True, tenant_id=None, actions=(BookneticAction(
                                 id=number, driver="email", active=True,
                                 data={"to": "{customer_email}", "subject": subject, "body": body}),))


def test_booknetic_workflows_differing_by_locale_and_texts_merge_into_one_with_variants():
    merged = merge_locales([translate(w) for w in (
        booknetic(1, "Reminder IT", "it_IT", "Promemoria {service_name}", "Ciao"),
        booknetic(2, "Reminder EN", "en_US", "Reminder {service_name}", "Hello"),
        booknetic(3, "Reminder FR", "fr_FR", "Rappel {service_name}", "Bonjour"),
        booknetic(4, "Other", "fr_FR", "Rappel", "Bonjour", when="booking_rescheduled"))])
    assert [t.source for t in merged] == ["Booknetic workflows 1 (Reminder IT), 2 (Reminder EN), 3 (Reminder FR)",
                                          "Booknetic workflow 4 (Other)"]
    document = merged[0].document
    assert document["name"] == "Reminder EN"  # the default's
    assert document["filters"] == {"statuses": ["approved"], "locales": ["it_IT", "en_US", "fr_FR"]}
    assert document["actions"][0]["subject"] == {"it_IT": "Promemoria {service_name}", "en_US": "Reminder {service_name}",
                                                 "fr_FR": "Rappel {service_name}", "default": "Reminder {service_name}"}
    assert "the default texts are Booknetic workflow 2 (Reminder EN)'s" in merged[0].notes[-1]
    parsed = parse_workflow(document)
    assert parsed.actions[0].fields["subject"]["fr_FR"] == "Rappel {{ service_name }}"


def test_a_booknetic_workflow_without_a_locale_gives_the_default_and_the_merged_one_goes_to_everyone():
    everyone = booknetic(5, "Reminder", "", "Reminder", "Hello")
    merged = merge_locales([translate(w) for w in (booknetic(6, "Reminder DE", "de", "Erinnerung", "Hallo"), everyone)])
    [one] = merged
    assert one.document["name"] == "Reminder" and "locales" not in one.document["filters"]
    assert one.document["actions"][0]["body"] == {"de": "Hallo", "default": "Hello"}
    assert any("to every customer besides" in note for note in one.notes)


def test_booknetic_workflows_of_the_same_locale_are_not_merged():
    merged = merge_locales([translate(w) for w in (booknetic(7, "A", "fr", "a", "b"), booknetic(8, "B", "fr", "c", "d"))])
    assert [t.document["name"] for t in merged] == ["A", "B"]
    assert all("same locale" in t.notes[-1] for t in merged)
