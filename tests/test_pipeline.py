"""The event pipeline, driven by plain SQL the way a booking application writes, with time passed in."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import text

from channels import Channel
from scheduler.cli import main
from tests.booking import book, insert, seed
from tests.channels.servers import HttpServer, Reply
from tests.conftest import sql, utc
from tests.pipeline import NOW, Pipeline, add_workflow, make_config

START, END = "2026-12-01T10:00:00+00:00", "2026-12-01T10:45:00+00:00"


def email_workflow(name="Confirmation", trigger=None, filters=None, subject="{{ service_name }} booked"):
    document = {
        "name": name,
        "trigger": trigger or {"type": "appointment_created"},
        "actions": [{"type": "email", "to": ["customer"], "subject": subject,
                     "body": "Hello {{ customer_first_name }}, {{ appointment_date_time }}."}],
    }
    if filters:
        document["filters"] = filters
    return document


@pytest.fixture
def pipeline(engine, db_url):
    pipeline = Pipeline(engine, make_config(db_url))
    yield pipeline
    pipeline.close()


def deliveries(engine):
    return sql(engine, "SELECT workflow_id, action_type, status, error FROM deliveries ORDER BY id")


def added_with_the_cli(db_url: str, directory, document: dict) -> int:
    """Add *document* as an admin does: a YAML file and `apptflow workflow add`."""
    path = directory / f"{document['name'].replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    result = CliRunner().invoke(main, ["workflow", "add", str(path)],
                                env={"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": ""})
    assert result.exit_code == 0, result.output
    return int(re.search(r"added workflow (\d+)", result.output).group(1))


def test_a_booking_sends_the_confirmation(engine, pipeline):
    add_workflow(engine, email_workflow())
    ids = seed(engine)
    book(engine, ids, starts_at=START, ends_at=END)
    outcomes = pipeline.run()
    assert [o.status for o in outcomes] == ["sent"]
    [email] = pipeline.sent("smtp")
    assert email.to == ("ada@example.test",)
    assert email.subject == "Haircut booked"
    assert email.text == "Hello Ada, Dec 1, 2026, 11:00 AM."  # Paris time, English locale
    [(_, action, status, error)] = deliveries(engine)
    assert (action, status, error) == ("email", "sent", None)


FILTER_CASES = [
    ({"statuses": ["pending"]}, True), ({"statuses": ["approved"]}, False),
    ({"started_by": ["frontend"]}, True), ({"started_by": ["backend"]}, False),
    ({"locales": ["en"]}, True), ({"locales": ["fr"]}, False),
]


@pytest.mark.parametrize("filters, fires", FILTER_CASES)
def test_word_filters(engine, pipeline, filters, fires):
    add_workflow(engine, email_workflow(filters=filters))
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.run()
    assert len(pipeline.sent("smtp")) == (1 if fires else 0)


@pytest.mark.parametrize("name", ["locations", "services", "staff"])
def test_id_filters(engine, pipeline, name):
    ids = seed(engine)
    key = {"locations": "location", "services": "service", "staff": "staff"}[name]
    add_workflow(engine, email_workflow("matching", filters={name: [ids[key]]}))
    add_workflow(engine, email_workflow("other", filters={name: [ids[key] + 1000]}))
    book(engine, ids, starts_at=START, ends_at=END)
    pipeline.run()
    assert [w for w, *_ in deliveries(engine)] == [1]


def test_reschedule_fires_on_a_time_change_and_not_on_a_status_change(engine, pipeline):
    add_workflow(engine, email_workflow(trigger={"type": "appointment_rescheduled"},
                                        subject="moved to {{ appointment_start_time }}"))
    appointment = book(engine, seed(engine), starts_at=START, ends_at=END)
    sql(engine, "UPDATE appointments SET status = 'approved' WHERE id = :id", id=appointment)
    pipeline.run()
    assert pipeline.sent("smtp") == []
    sql(engine, "UPDATE appointments SET starts_at = :s, ends_at = :e WHERE id = :id", id=appointment,
        s="2026-12-01T14:00:00+00:00", e="2026-12-01T14:45:00+00:00")
    pipeline.run()
    assert [m.subject for m in pipeline.sent("smtp")] == ["moved to 3:00 PM"]


def test_status_changes_match_from_and_to(engine, pipeline):
    add_workflow(engine, email_workflow("approved", trigger={
        "type": "appointment_status_changed", "from": ["pending"], "to": ["approved"]},
        subject="{{ old_status }} -> {{ new_status }}"))
    add_workflow(engine, email_workflow("any", trigger={"type": "appointment_status_changed"},
                                        subject="any {{ new_status }}"))
    appointment = book(engine, seed(engine), starts_at=START, ends_at=END)
    for status in ("approved", "canceled"):
        sql(engine, "UPDATE appointments SET status = :s WHERE id = :id", s=status, id=appointment)
    pipeline.run()
    assert sorted(m.subject for m in pipeline.sent("smtp")) == [
        "any approved", "any canceled", "pending -> approved"]


def test_two_status_changes_in_one_transaction_are_two_matches(engine, pipeline):
    add_workflow(engine, email_workflow(trigger={"type": "appointment_status_changed"},
                                        subject="{{ old_status }} -> {{ new_status }}"))
    appointment = book(engine, seed(engine), starts_at=START, ends_at=END)
    with engine.begin() as conn:
        for status in ("approved", "completed"):
            conn.execute(text("UPDATE appointments SET status = :s WHERE id = :id"), {"s": status, "id": appointment})
    pipeline.run()
    assert sorted(m.subject for m in pipeline.sent("smtp")) == ["approved -> completed", "pending -> approved"]


def test_customer_created_with_a_locale_filter(engine, pipeline):
    add_workflow(engine, {"name": "Welcome", "trigger": {"type": "customer_created"},
                          "filters": {"locales": ["fr"]},
                          "actions": [{"type": "email", "to": ["customer"], "subject": "Bienvenue {{ customer_full_name }}",
                                       "body": "{{ company_name }}"}]})
    insert(engine, "customers", first_name="Zoé", last_name="Durand", email="zoe@example.test", locale="fr_FR")
    insert(engine, "customers", first_name="Bob", email="bob@example.test", locale="en")
    pipeline.run()
    [email] = pipeline.sent("smtp")
    assert (email.to, email.subject, email.text) == (("zoe@example.test",), "Bienvenue Zoé Durand", "Salon Lumière")


def test_a_replayed_event_sends_nothing_twice(engine, pipeline):
    add_workflow(engine, email_workflow())
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.run()
    sql(engine, "UPDATE change_events SET processed_at = NULL")
    pipeline.run()
    assert len(pipeline.sent("smtp")) == 1
    assert len(deliveries(engine)) == 1


def test_disabled_and_invalid_workflows_do_not_run(engine, pipeline):
    add_workflow(engine, {**email_workflow("off"), "enabled": False})
    broken = insert(engine, "workflows", name="broken by hand", trigger_type="appointment_created")
    insert(engine, "workflow_actions", workflow_id=broken, position=0, type="email",
           config=json.dumps({"to": ["customer"], "subject": "{{ nope }}", "body": "b"}))
    add_workflow(engine, email_workflow("on"))
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.run()
    assert [w for w, *_ in deliveries(engine)] == [3]
    [(error,)] = sql(engine, "SELECT error FROM workflows WHERE id = :id", id=broken)
    assert error == "actions[0].subject: unknown keyword 'nope'"


def test_events_committed_out_of_order_are_each_handled_once(engine, pipeline, backend):
    if backend == "sqlite":
        pytest.skip("SQLite serialises writers: transactions cannot commit out of order")
    add_workflow(engine, email_workflow(subject="{{ appointment_id }}"))
    ids = seed(engine)
    pipeline.run()
    with engine.connect() as slow:
        slow.begin()
        first = book(slow, ids, starts_at=START, ends_at=END)  # lower event id, commits last
        second = book(engine, ids, starts_at=START, ends_at=END)
        pipeline.run()
        slow.commit()
    pipeline.run()
    assert sorted(m.subject for m in pipeline.sent("smtp")) == sorted([str(first), str(second)])
    assert sql(engine, "SELECT count(*) FROM change_events WHERE processed_at IS NULL") == [(0,)]


def test_a_template_failing_at_render_time_kills_only_its_delivery(engine, pipeline):
    add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "email", "to": ["customer"], "subject": "{{ appointment.custom.missing }}", "body": "b"},
        {"type": "email", "to": ["customer"], "subject": "fine", "body": "b"},
        {"type": "sms", "to": ["customer", "{{ customer.custom.parent_phone }}"], "body": "hi"},
    ]})
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.run()
    rows = deliveries(engine)
    assert [(a, s) for _, a, s, _ in rows] == [("email", "dead"), ("email", "sent"), ("sms", "sent"), ("sms", "sent")]
    assert "cannot render" in rows[0][3] and "missing" in rows[0][3]
    assert [m.to for m in pipeline.sent("twilio-sms")] == ["+15550002222", "+15550003333"]


@pytest.fixture
def receiver():
    server = HttpServer().start()
    yield server
    server.stop()


def webhook_pipeline(engine, db_url, receiver):
    add_workflow(engine, {"name": "hook", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "webhook", "url": f"{receiver.url}/hook", "json": {"id": "{{ appointment_id }}"}}]})
    return Pipeline(engine, make_config(db_url, APPTFLOW_DAEMON_DRY_RUN="false"))


def test_transient_failures_follow_the_backoff_schedule(engine, db_url, receiver):
    pipeline = webhook_pipeline(engine, db_url, receiver)
    receiver.script.extend([Reply(status=503), Reply(status=429), Reply(status=200)])
    book(engine, seed(engine), starts_at=START, ends_at=END)
    now = NOW
    for attempt, base in ((1, 30), (2, 60)):
        [outcome] = pipeline.run(now)
        assert outcome.status == "pending"
        [(at, attempts)] = sql(engine, "SELECT next_attempt_at, attempts FROM deliveries")
        due = utc(at)
        assert attempts == attempt
        assert dt.timedelta(seconds=base * 0.8) <= due - now <= dt.timedelta(seconds=base * 1.2)
        assert pipeline.run(due - dt.timedelta(seconds=1)) == []  # not due yet: nothing happens
        now = due
    assert [o.status for o in pipeline.run(now)] == ["sent"]
    assert len(receiver.requests) == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # stable across retries
    pipeline.close()


def test_the_last_attempt_and_permanent_errors_are_dead(engine, db_url, receiver):
    pipeline = webhook_pipeline(engine, db_url, receiver)
    receiver.route = lambda request: Reply(status=404 if request.json()["id"] == "1" else 500)
    ids = seed(engine)
    book(engine, ids, starts_at=START, ends_at=END)
    [outcome] = pipeline.run()
    assert outcome.status == "dead"
    book(engine, ids, starts_at=START, ends_at=END)
    now = NOW
    for _ in range(8):
        pipeline.run(now)
        now += dt.timedelta(hours=2)
    rows = sql(engine, "SELECT status, attempts, error FROM deliveries ORDER BY id")
    assert rows[0][:2] == ("dead", 1) and "404" in rows[0][2]
    assert rows[1][:2] == ("dead", 8) and rows[1][2].startswith("gave up after 8 attempts")
    pipeline.close()


class Exploding(Channel):
    """A channel with a bug in it."""

    name = "smtp"

    def send(self, message):
        raise ZeroDivisionError("bug in a channel")


def test_an_unexpected_channel_exception_is_retried_and_logged(engine, pipeline, caplog):
    add_workflow(engine, email_workflow())
    pipeline.transports._channels["smtp"] = Exploding()
    book(engine, seed(engine), starts_at=START, ends_at=END)
    [outcome] = pipeline.run()
    assert outcome.status == "pending" and "ZeroDivisionError" in outcome.error
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_deleting_a_workflow_skips_its_pending_deliveries_only(engine, pipeline):
    workflow = add_workflow(engine, email_workflow())
    ids = seed(engine)
    book(engine, ids, starts_at=START, ends_at=END)
    pipeline.run()
    book(engine, ids, starts_at=START, ends_at=END)
    pipeline.consumer.drain(NOW)  # written, not yet sent
    sql(engine, "DELETE FROM workflow_actions WHERE workflow_id = :id", id=workflow)
    sql(engine, "DELETE FROM workflows WHERE id = :id", id=workflow)
    pipeline.run()
    assert [(s, e) for _, _, s, e in deliveries(engine)] == [("sent", None), ("skipped", "workflow deleted")]


def test_set_status_chains_stop_at_the_depth_limit(engine, db_url):
    pipeline = Pipeline(engine, make_config(db_url, APPTFLOW_DAEMON_DRY_RUN="false"))  # statuses are written

    def flip(name, to, back):
        return {"name": name, "trigger": {"type": "appointment_status_changed", "to": [to]},
                "actions": [{"type": "set_status", "status": back}]}
    add_workflow(engine, flip("approve pending", "pending", "approved"))
    add_workflow(engine, flip("unapprove", "approved", "pending"))
    appointment = book(engine, seed(engine), starts_at=START, ends_at=END, status="new")
    sql(engine, "UPDATE appointments SET status = 'approved' WHERE id = :id", id=appointment)
    pipeline.run()
    rows = deliveries(engine)
    assert [s for _, _, s, _ in rows] == ["sent"] * 5 + ["skipped"]
    assert rows[-1][3] == "set_status chain stopped: 5 status changes in a row (limit 5)"
    assert sql(engine, "SELECT max(depth) FROM change_events") == [(5,)]
    pipeline.close()


def test_workflow_test_renders_without_sending(engine, db_url):
    workflow = add_workflow(engine, email_workflow(subject="{{ service_name }} with {{ staff_name }}"))
    appointment = book(engine, seed(engine), starts_at=START, ends_at=END)
    result = CliRunner().invoke(main, ["workflow", "test", str(workflow), "--appointment", str(appointment)],
                                env={"APPTFLOW_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert "subject: Haircut with Sam Staff" in result.output
    assert "to: [\"ada@example.test\"]" in result.output
    assert sql(engine, "SELECT count(*) FROM deliveries") == [(0,)]


def test_sends_interrupted_by_a_crash_are_resent_or_held_per_action(engine, pipeline, db_url):
    from db import deliveries as outbox

    add_workflow(engine, {"name": "both", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "email", "to": ["customer"], "subject": "s", "body": "b"},
        {"type": "sms", "to": ["customer"], "body": "b"},
        {"type": "webhook", "url": "https://hooks.example.com/x", "body": "b", "after_crash": "hold"},
    ]})
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.consumer.drain(NOW)
    lease = dt.timedelta(minutes=2)
    with engine.begin() as conn:  # three workers claim, then the process dies
        claimed = [outbox.claim_due(conn, NOW, lease) for _ in range(3)]
    assert [d.status for d in claimed] == ["sending"] * 3
    with engine.begin() as conn:
        assert outbox.reclaim_expired(conn, NOW + lease - dt.timedelta(seconds=1)) == (0, 0)  # lease still held
        assert outbox.reclaim_expired(conn, NOW + lease + dt.timedelta(seconds=1)) == (1, 2)
    assert [(a, s) for _, a, s, _ in deliveries(engine)] == [("email", "pending"), ("sms", "unknown"),
                                                               ("webhook", "unknown")]
    pipeline.run(NOW + lease + dt.timedelta(seconds=2))
    assert [(a, s) for _, a, s, _ in deliveries(engine)] == [("email", "sent"), ("sms", "unknown"),
                                                               ("webhook", "unknown")]


def test_log_and_retry_from_the_command_line(engine, pipeline, db_url):
    workflow = add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "email", "to": ["customer"], "subject": "{{ appointment.custom.promo }}", "body": "b"}]})
    appointment = book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.run()
    env = {"APPTFLOW_DATABASE_URL": db_url}
    log = CliRunner().invoke(main, ["log", "--workflow", str(workflow), "--status", "dead"], env=env)
    assert log.exit_code == 0
    assert re.search(rf"^\s+1\s+\S+ \S+\s+{workflow}\s+email\s+appointment {appointment}\s+dead\s+1\s+-$",
                     log.output, re.M), log.output
    assert "error: cannot render: undefined in template: appointment.custom has no field 'promo'" in log.output
    sql(engine, "UPDATE appointments SET custom = :c WHERE id = :id", c='{"promo": "WINTER"}', id=appointment)
    assert CliRunner().invoke(main, ["retry", "1"], env=env).exit_code == 0
    again = CliRunner().invoke(main, ["retry", "1"], env=env)
    assert again.exit_code == 1 and "delivery 1 is pending" in again.output
    pipeline.run(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))  # `retry` queues it for now
    [email] = pipeline.sent("smtp")
    assert email.subject == "WINTER"
    assert "no deliveries" in CliRunner().invoke(main, ["log", "--status", "dead"], env=env).output


def test_handled_events_are_purged_after_the_retention_but_failed_ones_kept(engine, pipeline):
    from db import events

    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.run(NOW)
    sql(engine, "UPDATE change_events SET error = 'kept for inspection' WHERE id = 1")
    handled = sql(engine, "SELECT count(*) FROM change_events")[0][0]
    with engine.begin() as conn:
        assert events.purge_processed(conn, NOW) == 0  # handled at NOW, not before
        assert events.purge_processed(conn, NOW + dt.timedelta(seconds=1)) == handled - 1
    assert sql(engine, "SELECT id, error FROM change_events") == [(1, "kept for inspection")]


def test_an_attempt_that_outlived_its_lease_cannot_overwrite_the_newer_one(engine, pipeline):
    from db import deliveries as outbox

    add_workflow(engine, email_workflow())
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.consumer.drain(NOW)
    lease = dt.timedelta(minutes=2)
    with engine.begin() as conn:
        slow = outbox.claim_due(conn, NOW, lease)  # a worker starts a very slow send ...
    later = NOW + lease + dt.timedelta(seconds=1)
    with engine.begin() as conn:
        outbox.reclaim_expired(conn, later)  # ... its lease expires, the email is resent
    assert pipeline.worker.work_one(later).status == "sent"
    assert pipeline.worker.attempt(slow, later).status == "lost"  # the slow one finishes last
    assert sql(engine, "SELECT status, attempts FROM deliveries") == [("sent", 2)]


def test_a_recipient_entry_removed_by_sql_skips_its_delivery(engine, pipeline):
    workflow = add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "sms", "to": ["customer", "+15550009999"], "body": "b"}]})
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.consumer.drain(NOW)
    sql(engine, "UPDATE workflow_actions SET config = :c WHERE workflow_id = :id",
        c='{"to": ["customer"], "body": "b"}', id=workflow)
    pipeline.run()
    assert [(s, e) for _, _, s, e in deliveries(engine)] == [
        ("sent", None), ("skipped", "recipient entry 1 was removed from the action")]


def test_an_outcome_written_again_after_a_broken_connection_counts_once(engine, pipeline):
    """The record's commit may land although its connection broke before the answer: the worker
    writes it again, and finds it there, rather than calling the attempt lost."""
    from db import deliveries as outbox

    add_workflow(engine, email_workflow())
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.consumer.drain(NOW)
    lease = dt.timedelta(minutes=2)
    with engine.begin() as conn:
        claim = outbox.claim_due(conn, NOW, lease)
    done = outbox.sent(claim, NOW, provider_id="<id@x>", rendered={"subject": "s"}, recipients="a@x")
    with engine.begin() as conn:
        assert outbox.finish_many(conn, [done]) == {claim.id}  # landed; its answer was lost
    with engine.begin() as conn:
        assert outbox.finish_many(conn, [done]) == set()  # a first try would not own it
        assert outbox.finish_many(conn, [done], again=True) == {claim.id}  # a retry finds its own outcome
    assert sql(engine, "SELECT status, attempts, provider_id FROM deliveries") == [("sent", 1, "<id@x>")]
    # a row reclaimed meanwhile (pending again, the same attempt count) is not mistaken for a retry's outcome
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.consumer.drain(NOW)
    with engine.begin() as conn:
        second = outbox.claim_due(conn, NOW, lease)
        outbox.reclaim_expired(conn, NOW + 2 * lease)
    retry = outbox.retry(second, NOW + dt.timedelta(seconds=1), at=NOW + lease, error="503")
    with engine.begin() as conn:
        assert outbox.finish_many(conn, [retry], again=True) == set()
    assert sql(engine, "SELECT status, error FROM deliveries WHERE id = :id", id=second.id) == [
        ("pending", "resent: the previous attempt was interrupted")]


def test_workflow_test_explains_each_filter_and_renders_a_non_matching_one_only_when_told(engine, db_url):
    ids = seed(engine)
    other_staff = insert(engine, "staff", name="Camille Autre")
    workflow = add_workflow(engine, email_workflow(filters={
        "statuses": ["approved"], "services": [ids["service"]], "locales": ["fr"], "locations": [ids["location"]],
        "staff": [ids["staff"], other_staff], "started_by": ["backend"]}))
    appointment = book(engine, ids, starts_at=START, ends_at=END, status="pending", started_by="frontend")
    env = {"APPTFLOW_DATABASE_URL": db_url}
    test = ["workflow", "test", str(workflow), "--appointment", str(appointment)]
    result = CliRunner().invoke(main, test, env=env)
    assert result.exit_code == 0, result.output
    assert f"  locations: matches: wants {ids['location']}; the appointment has {ids['location']}" in result.output
    assert f"  services: matches: wants {ids['service']}; the appointment has {ids['service']}" in result.output
    assert f"  staff: matches: wants {ids['staff']}, {other_staff}; the appointment has {ids['staff']}" \
        in result.output
    assert "  statuses: does not match: wants approved; the appointment has 'pending'" in result.output
    assert "  started_by: does not match: wants backend; the appointment has 'frontend'" in result.output
    assert "  locales: does not match: wants fr; the appointment has 'en'" in result.output
    assert f"the filters do not match appointment {appointment}: the workflow would not run for it" in result.output
    assert "subject:" not in result.output  # nothing rendered
    anyway = CliRunner().invoke(main, [*test, "--ignore-filters"], env=env)
    assert anyway.exit_code == 0 and "rendering anyway" in anyway.output and "subject: " in anyway.output
    sql(engine, "UPDATE appointments SET staff_id = :s WHERE id = :id", s=other_staff, id=appointment)
    moved = CliRunner().invoke(main, test, env=env).output
    assert f"  staff: matches: wants {ids['staff']}, {other_staff}; the appointment has {other_staff}" in moved
    sql(engine, "UPDATE appointments SET status = 'approved', started_by = 'backend' WHERE id = :id", id=appointment)
    sql(engine, "UPDATE customers SET locale = 'fr_FR'")
    matching = CliRunner().invoke(main, test, env=env)
    assert "does not match" not in matching.output and "subject: " in matching.output
    assert sql(engine, "SELECT count(*) FROM deliveries") == [(0,)]


def test_one_email_per_address_across_to_cc_and_bcc(engine, pipeline):
    add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "email", "to": ["staff", "customer"], "cc": ["staff", "Sam <SAM@salon.test>"],
         "bcc": ["ada@example.test", "boss@salon.test"], "subject": "s", "body": "b"}]})
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.run()
    [email] = pipeline.sent("smtp")
    assert (email.to, email.cc, email.bcc) == (("sam@salon.test", "ada@example.test"), (), ("boss@salon.test",))


def test_a_second_entry_for_the_same_phone_is_skipped(engine, pipeline):
    add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "sms", "to": ["customer", "+15550002222", "staff"], "body": "b"}]})
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.run()
    assert sorted(m.to for m in pipeline.sent("twilio-sms")) == ["+15550001111", "+15550002222"]
    assert [(s, e) for _, _, s, e in deliveries(engine)] == [
        ("sent", None), ("skipped", "recipient entry 1 is the same recipient as entry 0: one message each"),
        ("sent", None)]


@pytest.mark.parametrize("country, outcome", [("FR", ("sent", "+33612345678")), ("", ("dead", None))])
def test_a_phone_number_written_nationally_is_sent_in_e164_with_the_company_country(engine, db_url, country,
                                                                                     outcome):
    config = make_config(db_url, APPTFLOW_COMPANY_COUNTRY=country)
    pipeline = Pipeline(engine, config)
    add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "sms", "to": ["customer"], "body": "b"}]})
    ids = seed(engine)
    sql(engine, "UPDATE locations SET timezone = 'UTC'")  # no country's: the company's is the one
    sql(engine, "UPDATE customers SET phone = '06 12 34 56 78' WHERE id = :id", id=ids["customer"])
    book(engine, ids, starts_at=START, ends_at=END)
    pipeline.run()
    [(_, _, status, error)] = deliveries(engine)
    assert status == outcome[0]
    if status == "sent":
        assert [m.to for m in pipeline.sent("twilio-sms")] == [outcome[1]]
    else:
        assert "'06 12 34 56 78', which is not a valid phone number" in error
    pipeline.close()


@pytest.mark.parametrize("zone, country, outcome", [
    ("Europe/Paris", "", ("sent", "+33612345678")),
    ("Europe/Paris", "GB", ("sent", "+33612345678")),  # the location's country before the company's
    ("America/New_York", "FR", ("dead", None)),  # a French national number is no number in the US
    ("Etc/GMT-1", "", ("dead", None)),  # a zone that is no country's, and no company country
])
def test_a_phone_number_written_nationally_is_read_in_the_country_of_the_locations_time_zone(
        engine, db_url, tmp_path, zone, country, outcome):
    pipeline = Pipeline(engine, make_config(db_url, APPTFLOW_COMPANY_COUNTRY=country))
    added_with_the_cli(db_url, tmp_path, {"name": "w", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "sms", "to": ["customer", "{{ appointment.custom.parent_phone }}"], "body": "b"}]})
    ids = seed(engine)
    sql(engine, "UPDATE locations SET timezone = :zone", zone=zone)
    sql(engine, "UPDATE customers SET phone = '06 12 34 56 78' WHERE id = :id", id=ids["customer"])
    book(engine, ids, starts_at=START, ends_at=END, custom={"parent_phone": "+15550003333"})
    pipeline.run()
    [(_, _, status, error), (_, _, parent, _)] = deliveries(engine)
    assert (status, parent) == (outcome[0], "sent")  # a number in E.164 is read as written anywhere
    if status == "sent":
        assert sorted(m.to for m in pipeline.sent("twilio-sms")) == sorted([outcome[1], "+15550003333"])
    else:
        assert "'06 12 34 56 78', which is not a valid phone number" in error
    pipeline.close()


@pytest.mark.parametrize("locale, labels", [("it", {"approved": "Approvato", "canceled": "Annullato"}),
                                            ("tr", {"approved": "Onaylandı", "canceled": "İptal edildi"})])
def test_appointment_status_is_the_label_in_the_customers_language_and_the_code_beside_it(
        engine, pipeline, db_url, tmp_path, locale, labels):
    added_with_the_cli(db_url, tmp_path, email_workflow(
        "status", trigger={"type": "appointment_status_changed"},
        subject="{{ appointment_status }} / {{ appointment_status_code }}"))
    ids = seed(engine)
    sql(engine, "UPDATE customers SET locale = :locale WHERE id = :id", locale=locale, id=ids["customer"])
    appointment = book(engine, ids, starts_at=START, ends_at=END, status="pending")
    for status in ("approved", "canceled"):
        sql(engine, "UPDATE appointments SET status = :s WHERE id = :id", s=status, id=appointment)
        pipeline.run()
    assert [m.subject for m in pipeline.sent("smtp")] == [
        f"{labels['approved']} / approved", f"{labels['canceled']} / canceled"]


def test_booknetic_single_brace_keywords_render_the_same_text_as_their_jinja_form(engine, pipeline):
    booknetic = {"subject": "Hi {customer_full_name}, {service_name} on {appointment_date_time}",
                 "body": "With {staff_name} at {location_name}. Code {SUMMER}, json {\"a\": 1}."}
    jinja = {"subject": "Hi {{ customer_full_name }}, {{ service_name }} on {{ appointment_date_time }}",
             "body": "With {{ staff_name }} at {{ location_name }}. Code {SUMMER}, json {\"a\": 1}."}
    for name, texts in (("booknetic", booknetic), ("jinja", jinja)):
        add_workflow(engine, {"name": name, "trigger": {"type": "appointment_created"},
                              "actions": [{"type": "email", "to": ["customer"], **texts}]})
    book(engine, seed(engine), starts_at=START, ends_at=END)
    pipeline.run()
    first, second = pipeline.sent("smtp")
    assert (first.subject, first.text) == (second.subject, second.text)
    assert first.subject == "Hi Ada Lovelace, Haircut on " + first.subject.split(" on ", 1)[1]
    assert "{" not in first.subject and first.text.endswith("Code {SUMMER}, json {\"a\": 1}.")
    stored = sql(engine, "SELECT config FROM workflow_actions ORDER BY id")
    assert all("{{ customer_full_name }}" in str(row[0]) for row in stored)  # kept in Jinja's form


def test_booknetics_booking_keywords_come_from_columns_the_application_writes(engine, pipeline):
    add_workflow(engine, {"name": "receipt", "trigger": {"type": "appointment_created"}, "actions": [{
        "type": "email", "to": ["customer"], "subject": "{service_category_name}: {appointment_total_attendees} people",
        "body": "Paid {appointment_paid_price} of {appointment_sum_price} by {appointment_payment_method}. "
                "{appointment_notes}. Call {location_phone_number}, born {customer_birthday}, {staff_about}."}]})
    ids = seed(engine)
    sql(engine, "UPDATE services SET category = 'Hair'")
    sql(engine, "UPDATE locations SET phone = '+33 1 40 00 00 00'")
    sql(engine, "UPDATE staff SET about = 'Ten years here'")
    sql(engine, "UPDATE customers SET birthday = '1990-05-17'")
    book(engine, ids, starts_at=START, ends_at=END, notes="Bring the form", total_price=60, paid_price=20,
         payment_method="local", attendees=2)
    pipeline.run()
    [message] = pipeline.sent("smtp")
    assert message.subject == "Hair: 2 people"
    assert message.text.strip() == ("Paid 20.00 of 60.00 by local. Bring the form. Call +33 1 40 00 00 00, "
                                    "born May 17, 1990, Ten years here.")


def test_a_dry_run_records_what_set_status_would_write_and_leaves_the_appointment(engine, pipeline):
    add_workflow(engine, {"name": "approve", "trigger": {"type": "appointment_created"},
                          "actions": [{"type": "set_status", "status": "approved"}]})
    appointment = book(engine, seed(engine), starts_at=START, ends_at=END, status="pending")
    outcomes = pipeline.run()
    assert [o.status for o in outcomes] == ["sent"]
    assert sql(engine, "SELECT status FROM appointments WHERE id = :id", id=appointment) == [("pending",)]
    [(rendered, provider)] = sql(engine, "SELECT rendered, provider_id FROM deliveries")
    assert "approved" in str(rendered) and provider == "dry-run: not written"
    assert sql(engine, "SELECT count(*) FROM change_events WHERE table_name = 'appointments'") == [(1,)]  # no change


def test_a_staff_only_change_is_a_reschedule_with_the_old_staff_and_time_available(engine, pipeline):
    ids = seed(engine)
    other = insert(engine, "staff", name="Camille Autre", email="camille@salon.test")
    add_workflow(engine, email_workflow("any", trigger={"type": "appointment_rescheduled"},
                                        subject="{{ old_staff_name }} → {{ staff_name }}, "
                                                "was {{ old_appointment_date_time }}"))
    add_workflow(engine, email_workflow("time only", trigger={"type": "appointment_rescheduled", "on": ["time"]},
                                        subject="time"))
    appointment = book(engine, ids, starts_at=START, ends_at=END)
    pipeline.run()
    sql(engine, "UPDATE appointments SET staff_id = :s WHERE id = :id", s=other, id=appointment)
    pipeline.run()
    [email] = pipeline.sent("smtp")  # the time-only workflow stays quiet
    assert email.subject.startswith("Sam Staff → Camille Autre, was Dec 1, 2026")
    sql(engine, "UPDATE appointments SET starts_at = :s, ends_at = :e WHERE id = :id",
        s="2026-12-01T14:00:00+00:00", e="2026-12-01T14:45:00+00:00", id=appointment)
    pipeline.run()
    assert sorted(m.subject for m in pipeline.sent("smtp")[1:]) == [
        "Camille Autre → Camille Autre, was Dec 1, 2026, 11:00 AM", "time"]


RESCHEDULED_ON = {"service": ("services", {"name": "Colour", "price": 55, "duration_minutes": 45}, "Haircut"),
                  "location": ("locations", {"name": "Bastille", "address": "2 rue de la Roquette",
                                             "timezone": "Europe/Paris"}, "Downtown")}


@pytest.mark.parametrize("aspect", sorted(RESCHEDULED_ON))
def test_a_service_or_location_only_change_is_a_reschedule_with_the_old_name_from_the_database(
        engine, pipeline, db_url, tmp_path, aspect):
    """Only the other column changes; `on: [service]` stays quiet for a new location, `on: [location]` for a
    new service, and the old name is the row the appointment pointed to before."""
    table, row, old_name = RESCHEDULED_ON[aspect]
    ids = seed(engine)
    other = insert(engine, table, **row)
    subject = f"{{{{ old_{aspect}_name }}}} → {{{{ {aspect}_name }}}}"
    added_with_the_cli(db_url, tmp_path, email_workflow("any change", trigger={"type": "appointment_rescheduled"},
                                                        subject=subject))
    for on in RESCHEDULED_ON:
        added_with_the_cli(db_url, tmp_path, email_workflow(f"on {on}", subject=f"on {on}: {{{{ old_{on}_name }}}}",
                                                            trigger={"type": "appointment_rescheduled", "on": [on]}))
    appointment = book(engine, ids, starts_at=START, ends_at=END)
    pipeline.run()
    assert pipeline.sent("smtp") == []
    sql(engine, f"UPDATE appointments SET {aspect}_id = :other WHERE id = :id", other=other, id=appointment)
    pipeline.run()
    assert sorted(m.subject for m in pipeline.sent("smtp")) == sorted([
        f"{old_name} → {row['name']}", f"on {aspect}: {old_name}"])
    # renamed afterwards: the old name is read from the database when the event is handled
    sql(engine, f"UPDATE {table} SET name = 'Renamed' WHERE id = :id", id=ids[aspect])
    sql(engine, f"UPDATE appointments SET {aspect}_id = :back WHERE id = :id", back=ids[aspect], id=appointment)
    pipeline.run()
    assert sorted(m.subject for m in pipeline.sent("smtp")[2:]) == sorted([
        f"{row['name']} → Renamed", f"on {aspect}: {row['name']}"])


def test_rescheduled_on_is_validated_and_exported():
    from engine.document import to_document
    from engine.errors import InvalidWorkflow
    from engine.validation import parse_workflow

    base = {"name": "r", "actions": [{"type": "email", "to": ["customer"], "subject": "s", "body": "b"}]}
    parsed = parse_workflow({**base, "trigger": {"type": "appointment_rescheduled", "on": ["staff", "time"]}})
    assert parsed.trigger.on == ("time", "staff") and to_document(parsed)["trigger"]["on"] == ["time", "staff"]
    with pytest.raises(InvalidWorkflow, match=r"trigger.on: expected a non-empty list of time, staff, location, "
                                              r"service; got \['room'\]"):
        parse_workflow({**base, "trigger": {"type": "appointment_rescheduled", "on": ["room"]}})
    with pytest.raises(InvalidWorkflow, match="trigger.on: not a parameter of appointment_created"):
        parse_workflow({**base, "trigger": {"type": "appointment_created", "on": ["time"]}})


def test_a_dry_run_runs_every_check_of_a_real_send_and_fails_the_same_way(engine, db_url, tmp_path):
    """Only the transmission is left out: an attachment outside attachment_dir, a webhook to a
    private address and a bad phone number fail in a dry run exactly as they do for real."""
    add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "email", "to": ["customer"], "subject": "s", "body": "b", "attachments": ["/etc/hostname"]},
        {"type": "webhook", "url": "http://localhost:9/hook", "body": "x"},
        {"type": "sms", "to": ["{{ appointment.custom.phone }}"], "body": "b"},
        {"type": "set_status", "status": "approved"}]})
    ids = seed(engine)
    settings = {"APPTFLOW_DAEMON_ATTACHMENT_DIR": str(tmp_path), "APPTFLOW_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "false",
                "APPTFLOW_SMTP_HOST": "127.0.0.1", "APPTFLOW_SMTP_PORT": "9"}
    outcomes = {}
    for dry in ("true", "false"):
        appointment = book(engine, ids, starts_at=START, ends_at=END, status="pending", custom={"phone": "12345"})
        pipeline = Pipeline(engine, make_config(db_url, APPTFLOW_DAEMON_DRY_RUN=dry, **settings))
        pipeline.run()
        pipeline.close()
        outcomes[dry] = sql(engine, "SELECT action_type, status, error FROM deliveries WHERE subject_id = :id "
                                    "AND action_type <> 'set_status' ORDER BY id", id=appointment)
        status = sql(engine, "SELECT status FROM appointments WHERE id = :id", id=appointment)
        assert status == ([("pending",)] if dry == "true" else [("approved",)])
    assert outcomes["true"] == outcomes["false"]
    errors = {action: (status, error) for action, status, error in outcomes["true"]}
    assert errors["email"][0] == "dead" and "outside" in errors["email"][1]
    assert errors["webhook"][0] == "dead" and "not a public address" in errors["webhook"][1]
    assert errors["sms"][0] == "dead" and "'12345', which is not a valid phone number" in errors["sms"][1]
