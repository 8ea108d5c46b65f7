"""Action types, triggers and channels are plug-ins: a throwaway one of each, defined in test code alone
(tests/plugins/), goes through validation, the command line, matching, rendering, a dry run and a send;
an unknown type is refused wherever it is met, never sent as anything."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from scheduler.cli import main
from tests.booking import book, insert, seed
from tests.conftest import sql
from tests.pipeline import Pipeline, make_config
from tests.plugins import moved_earlier, page
from tests.plugins.page import PagerChannel

PAGE_WORKFLOW = """\
name: Page when a booking moves earlier
trigger: {type: appointment_moved_earlier, at_least: 30m}
actions:
  - type: page
    to: [staff, "+15550009999", "{{ customer.custom.parent_phone }}"]
    text: "{{ customer_full_name }}: {{ service_name }} moved {{ earlier_by }} min earlier"
"""


@pytest.fixture
def plugins():
    page.install()
    moved_earlier.install()
    yield
    page.uninstall()
    moved_earlier.uninstall()


@pytest.fixture
def cli(db_url):
    runner = CliRunner()

    def run(*args: str, **env: str):
        return runner.invoke(main, list(args), env={"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": "", **env})
    return run


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def move(engine, appointment: int, starts_at: str, ends_at: str) -> None:
    """The booking application moves an appointment: a plain UPDATE."""
    sql(engine, "UPDATE appointments SET starts_at = :s, ends_at = :e WHERE id = :id",
        s=starts_at, e=ends_at, id=appointment)


def test_a_throwaway_action_trigger_and_channel_go_through_the_whole_pipeline(plugins, cli, engine, db_url,
                                                                              tmp_path):
    path = write(tmp_path, "page.yaml", PAGE_WORKFLOW)
    assert cli("workflow", "validate", path).output.strip().endswith("ok (Page when a booking moves earlier)")
    wrong = write(tmp_path, "wrong.yaml", PAGE_WORKFLOW.replace("{{ earlier_by }}", "{{ earlier }}")
                  .replace("30m", "8d").replace('"+15550009999"', '"5550009999"'))
    refused = cli("workflow", "validate", wrong)
    assert refused.exit_code == 1
    for expected in ("trigger.at_least: at most 7d", "actions[0].to[1]: not a phone number in E.164 form",
                     "actions[0].text: unknown keyword 'earlier'"):
        assert expected in refused.output, refused.output
    added = cli("workflow", "add", path)
    assert added.exit_code == 0, added.output
    workflow = int(re.search(r"added workflow (\d+)", added.output).group(1))
    exported = cli("workflow", "export", str(workflow)).output
    assert "type: appointment_moved_earlier" in exported and "at_least: 30m" in exported

    ids = seed(engine)
    appointment = book(engine, ids, starts_at="2026-12-10T10:00:00+00:00", ends_at="2026-12-10T10:45:00+00:00")
    move(engine, appointment, "2026-12-10T09:50:00+00:00", "2026-12-10T10:35:00+00:00")  # 10 min: too little
    move(engine, appointment, "2026-12-10T08:50:00+00:00", "2026-12-10T09:35:00+00:00")  # 60 min earlier
    move(engine, appointment, "2026-12-10T11:00:00+00:00", "2026-12-10T11:45:00+00:00")  # later: not this trigger
    pipeline = Pipeline(engine, make_config(db_url, APPTFLOW_DAEMON_DRY_RUN="false", APPTFLOW_PAGER_PREFIX="[salon]"))
    try:
        outcomes = pipeline.run()
    finally:
        pipeline.close()
    assert [o.status for o in outcomes] == ["sent"] * 3
    [pager] = PagerChannel.built
    assert [(p.number, p.text) for p in pager.pages] == [
        (number, "[salon] Ada Lovelace: Haircut moved 60 min earlier")
        for number in ("+15550001111", "+15550009999", "+15550003333")]
    assert len({p.key for p in pager.pages}) == 3
    assert sql(engine, "SELECT recipients, status, after_crash FROM deliveries ORDER BY recipient_index") == [
        ("pager +15550001111", "sent", "hold"), ("pager +15550009999", "sent", "hold"),
        ("pager +15550003333", "sent", "hold")]
    log = cli("log").output
    assert "pager +15550009999" in log

    preview = cli("workflow", "test", str(workflow), "--appointment", str(appointment))
    assert preview.exit_code == 0, preview.output
    assert "--- actions[0] page #2" in preview.output and "moved 60 min earlier" in preview.output


def test_a_dry_run_checks_a_throwaway_channel_s_messages_and_sends_none(plugins, cli, engine, db_url, tmp_path):
    long_text = PAGE_WORKFLOW.replace("min earlier", "min earlier" + " (please call the customer back)" * 5)
    assert cli("workflow", "add", write(tmp_path, "page.yaml", PAGE_WORKFLOW)).exit_code == 0
    assert cli("workflow", "add", write(tmp_path, "long.yaml", long_text.replace(
        "name: Page when", "name: Long page when"))).exit_code == 0
    ids = seed(engine)
    appointment = book(engine, ids, starts_at="2026-12-10T10:00:00+00:00", ends_at="2026-12-10T10:45:00+00:00")
    move(engine, appointment, "2026-12-10T09:00:00+00:00", "2026-12-10T09:45:00+00:00")
    pipeline = Pipeline(engine, make_config(db_url))  # dry run
    try:
        outcomes = pipeline.run()
        recorded = pipeline.sent("pager")
    finally:
        pipeline.close()
    assert sorted(o.status for o in outcomes) == ["dead"] * 3 + ["sent"] * 3
    assert [p.number for p in recorded] == ["+15550001111", "+15550009999", "+15550003333"]
    [checker] = PagerChannel.built
    assert checker.pages == [] and checker.checked == 6  # every message checked, none sent
    dead = sql(engine, "SELECT error FROM deliveries WHERE status = 'dead'")
    assert all("pager: the body is" in error and "the limit is 160" in error for (error,) in dead)


UNKNOWN = """\
name: Slack the team
trigger: {type: appointment_moved}
actions:
  - {type: email, to: [customer], subject: s, body: b}
  - {type: slack, channel: "#bookings", text: "{{ appointment_id }}"}
"""


def test_an_unknown_action_or_trigger_is_refused_at_add_and_validate_with_its_place(cli, engine, tmp_path):
    path = write(tmp_path, "slack.yaml", UNKNOWN)
    for command in ("validate", "add"):
        result = cli("workflow", command, path)
        assert result.exit_code == 1
        assert "trigger.type: unknown trigger 'appointment_moved' (expected one of: appointment_created," \
            in result.output
        assert "actions[1].type: unknown action 'slack' (expected one of: email, sms, whatsapp, telegram, " \
               "set_status, webhook)" in result.output
    assert sql(engine, "SELECT count(*) FROM workflows") == [(0,)]


def test_a_row_of_an_unknown_type_written_by_sql_is_marked_and_never_sent(cli, engine, db_url):
    slack = insert(engine, "workflows", name="Slack by hand", trigger_type="appointment_created")
    insert(engine, "workflow_actions", workflow_id=slack, position=0, type="slack",
           config='{"url": "http://127.0.0.1:9/hook", "text": "{{ appointment_id }}"}')
    gone = insert(engine, "workflows", name="A plug-in no longer installed", trigger_type="appointment_moved_earlier")
    insert(engine, "workflow_actions", workflow_id=gone, position=0, type="email",
           config='{"to": ["customer"], "subject": "s", "body": "b"}')
    book(engine, seed(engine), starts_at="2026-12-10T10:00:00+00:00", ends_at="2026-12-10T10:45:00+00:00")
    pipeline = Pipeline(engine, make_config(db_url))
    try:
        assert pipeline.run() == []
    finally:
        pipeline.close()
    assert sql(engine, "SELECT count(*) FROM deliveries") == [(0,)]
    errors = dict(sql(engine, "SELECT id, error FROM workflows"))
    assert errors[slack].startswith("actions[0].type: unknown action 'slack'")
    assert errors[gone].startswith("trigger.type: unknown trigger 'appointment_moved_earlier'")
    listing = cli("workflow", "list").output
    assert "error: actions[0].type: unknown action 'slack'" in listing


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
NAMES = r"""["'](email|sms|whatsapp|telegram|webhook|set_status|smtp|twilio|sns|twilio-sms|twilio-whatsapp|sns-sms)["']"""
# Where one of those words is not an action type or a channel: a booking column, a kind of address, the
# mapping file's key for its status-writing statement (and the column that keeps it).
NOT_A_TYPE = re.compile(r'Column\("(email|set_status)"|_of\("staff", "email"\)|_customer_field\("email"\)|'
                        r'name="email", column="email"|\{"email": is_email|"set_status", "read_only"|'
                        r'_text\(problems, document, "set_status"\)')


def test_no_production_module_outside_the_type_modules_spells_an_action_type_or_channel():
    allowed = ("channels/", "engine/actions/", "engine/booknetic.py", "db/booknetic.py", "db/migrations/")
    found = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.split("/")[0] not in ("db", "engine", "scheduler") or relative.startswith(allowed):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(NAMES, line) and not NOT_A_TYPE.search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []
