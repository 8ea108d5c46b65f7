"""The workflow CLI on SQLite and PostgreSQL: add, list, show, export, enable, disable, delete, validate."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.document import load_yaml
from engine.validation import parse_workflow
from scheduler.cli import main
from scheduler.daemon import Daemon
from tests.booking import book, insert, seed
from tests.conftest import sql, wait_until
from tests.pipeline import make_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def readme_workflows() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [block for block in blocks if block.startswith("name:")]


@pytest.fixture
def cli(db_url):
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), env={"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": ""})
    return run


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def seed_catalogue(engine) -> None:
    """Three of each, so the README's `services: [3]` names something that exists."""
    for n in (1, 2, 3):
        insert(engine, "locations", name=f"L{n}", timezone="UTC")
        insert(engine, "services", name=f"S{n}", duration_minutes=30)
        insert(engine, "staff", name=f"T{n}")


def added_id(result) -> int:
    assert result.exit_code == 0, result.output
    return int(re.search(r"added workflow (\d+)", result.output).group(1))


def test_examples_and_readme_workflows_exist():
    assert len(EXAMPLES) >= 5
    assert readme_workflows()


@pytest.mark.parametrize("source", [p.name for p in EXAMPLES] + ["README"])
def test_every_example_round_trips(source, cli, engine, tmp_path, request):
    seed_catalogue(engine)
    texts = readme_workflows() if source == "README" else [(ROOT / "examples" / source).read_text()]
    for index, text in enumerate(texts):
        path = write(tmp_path, f"w{index}.yaml", text)
        assert cli("workflow", "validate", path).exit_code == 0
        workflow_id = added_id(cli("workflow", "add", path))
        listing = cli("workflow", "list")
        name = load_yaml(text)["name"]
        assert re.search(rf"^\s+{workflow_id}\s+(enabled|disabled)\s.*{re.escape(name)}$", listing.output, re.M)
        exported = cli("workflow", "export", str(workflow_id)).output
        assert parse_workflow(load_yaml(exported)) == parse_workflow(load_yaml(text))
        # re-added (after deleting the original, since names are unique) it exports identically
        assert cli("workflow", "delete", str(workflow_id)).exit_code == 0
        again = added_id(cli("workflow", "add", write(tmp_path, f"e{index}.yaml", exported)))
        assert cli("workflow", "export", str(again)).output == exported


def test_enable_disable_delete(cli, tmp_path):
    workflow_id = added_id(cli("workflow", "add", str(EXAMPLES[0])))
    assert cli("workflow", "disable", str(workflow_id)).exit_code == 0
    assert "disabled" in cli("workflow", "show", str(workflow_id)).output
    assert "enabled: false" in cli("workflow", "export", str(workflow_id)).output
    assert cli("workflow", "enable", str(workflow_id)).exit_code == 0
    assert "enabled: true" in cli("workflow", "export", str(workflow_id)).output
    assert cli("workflow", "delete", str(workflow_id)).exit_code == 0
    missing = cli("workflow", "show", str(workflow_id))
    assert missing.exit_code == 1 and f"no workflow with id {workflow_id}" in missing.output
    assert cli("workflow", "list").output.strip() == "no workflows"


def test_an_invalid_file_adds_nothing_and_names_every_place(cli, engine, tmp_path):
    good = str(EXAMPLES[0])
    bad = write(tmp_path, "bad.yaml", (
        "name: Bad\ntrigger: {type: appointment_starts, offset: 5x}\nfilters: {locations: [42]}\n"
        "actions:\n  - type: email\n    to: [customer, not-an-address]\n"
        "    subject: '{{ customer_nme }}'\n    body: '{{ oops'\n"))
    result = cli("workflow", "add", good, bad)
    assert result.exit_code == 1
    for place in ("trigger.offset", "filters.locations[0]: no location with id 42", "actions[0].to[1]",
                  "actions[0].subject: unknown keyword 'customer_nme'", "actions[0].body: template error"):
        assert f"bad.yaml: {place}" in result.output
    assert "nothing added" in result.output
    assert sql(engine, "SELECT count(*) FROM workflows") == [(0,)]
    assert cli("workflow", "validate", bad).exit_code == 1


@pytest.mark.parametrize("text, message", [
    ("name: [unclosed\n", "line 2, column 1: invalid YAML"),
    ("name: x\ntrigger: {type: appointment_moved}\nactions: [{type: set_status, status: a}]\n",
     "trigger.type: unknown trigger 'appointment_moved'"),
    ("name: x\ntrigger: {type: appointment_created}\nactions: [{type: pigeon}]\n",
     "actions[0].type: unknown action 'pigeon'"),
])
def test_bad_files_exit_non_zero_with_the_place(cli, engine, tmp_path, text, message):
    result = cli("workflow", "add", write(tmp_path, "w.yaml", text))
    assert result.exit_code == 1
    assert message in result.output
    assert sql(engine, "SELECT count(*) FROM workflows") == [(0,)]


def test_a_template_that_can_never_render_is_refused_when_added_not_dead_when_sent(cli, engine, tmp_path):
    path = write(tmp_path, "w.yaml", (
        "name: Never renders\ntrigger: {type: appointment_created}\n"
        "actions:\n  - type: sms\n    to: [customer]\n"
        "    body: \"Hi {{ customer_first_name.__class__.__mro__ }}\\n{{ 'x' * 10**9 }}\"\n"))
    for command in ("validate", "add"):
        result = cli("workflow", command, path)
        assert result.exit_code == 1, result.output
        assert ("w.yaml: actions[0].body: not allowed in a template (line 1): access to attribute '__class__' "
                "is unsafe") in result.output
        assert ("w.yaml: actions[0].body: always fails (line 2): template output limit: a repeated value "
                "longer than 100000 characters") in result.output
    assert sql(engine, "SELECT count(*) FROM workflows") == [(0,)]


def test_duplicate_names_are_refused(cli, engine, tmp_path):
    added_id(cli("workflow", "add", str(EXAMPLES[0])))
    again = cli("workflow", "add", str(EXAMPLES[0]))
    assert again.exit_code == 1 and "already exists (workflow" in again.output
    twice = cli("workflow", "add", str(EXAMPLES[1]), str(EXAMPLES[1]))
    assert twice.exit_code == 1 and "already exists (earlier in this command)" in twice.output
    assert sql(engine, "SELECT count(*) FROM workflows") == [(1,)]


def test_a_row_written_by_sql_with_bad_json_is_listed_with_its_error(cli, engine, backend):
    added_id(cli("workflow", "add", str(EXAMPLES[0])))
    broken = insert(engine, "workflows", name="Hand-written", trigger_type="appointment_starts",
                    trigger='{"offset": "-2x"}')
    insert(engine, "workflow_actions", workflow_id=broken, position=0, type="email",
           config='{"to": ["customer"]}')
    if backend == "sqlite":  # PostgreSQL's jsonb refuses malformed JSON at the door
        sql(engine, "UPDATE workflows SET filters = '{not json' WHERE id = :id", id=broken)
    listing = cli("workflow", "list")
    assert listing.exit_code == 0
    assert re.search(rf"^\s+{broken}\s+invalid\s.*Hand-written$", listing.output, re.M)
    assert "error: trigger.offset: '-2x' is not a duration" in listing.output
    if backend == "sqlite":
        assert "error: filters: not valid JSON" in listing.output
    else:
        assert "error: actions[0].subject: required for email" in listing.output
    assert cli("workflow", "export", str(broken)).exit_code == 1


def test_commands_on_a_database_without_schema_say_what_to_do(tmp_path):
    result = CliRunner().invoke(main, ["workflow", "list"],
                                env={"APPTFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"})
    assert result.exit_code == 1
    assert "run `apptflow db init`" in result.output


def test_db_init_twice_reports_the_revision(empty_db_url):
    runner = CliRunner()
    env = {"APPTFLOW_DATABASE_URL": empty_db_url}
    first = runner.invoke(main, ["db", "init"], env=env)
    second = runner.invoke(main, ["db", "upgrade"], env=env)
    assert first.exit_code == 0 and "schema created at revision" in first.output
    assert second.exit_code == 0 and "schema already at revision" in second.output


PRIVATE_TARGETS = ["http://169.254.169.254/latest/meta-data", "http://10.0.0.5/x", "http://127.0.0.1:8080/",
                   "http://[::1]/", "http://[fe80::1]/hook", "http://[::ffff:169.254.169.254]/"]


@pytest.mark.parametrize("url", PRIVATE_TARGETS)
def test_a_webhook_to_a_literal_private_address_is_refused_at_add(cli, engine, tmp_path, url):
    path = write(tmp_path, "w.yaml", f"name: leak\ntrigger: {{type: appointment_created}}\nactions:\n"
                                     f"  - {{type: webhook, url: '{url}', body: x}}\n")
    result = cli("workflow", "add", path)
    assert result.exit_code == 1
    assert re.search(rf"{re.escape(path)}: actions\[0\]\.url: \S+ is a [a-z-]+ address, not a public one: "
                     r"webhooks to private addresses are refused \(\[webhook\] allow_private_addresses = false\)",
                     result.output), result.output
    assert sql(engine, "SELECT count(*) FROM workflows") == [(0,)]
    assert cli("workflow", "validate", path).exit_code == 1


def test_the_private_address_rule_follows_the_configuration_and_leaves_names_to_send_time(db_url, engine, tmp_path):
    hooks = write(tmp_path, "w.yaml", "name: hooks\ntrigger: {type: appointment_created}\nactions:\n"
                                      "  - {type: webhook, url: 'http://169.254.169.254/x', body: x}\n")
    names = write(tmp_path, "n.yaml", "name: names\ntrigger: {type: appointment_created}\nactions:\n"
                                      "  - {type: webhook, url: 'http://intranet.example/x', body: x}\n"
                                      "  - {type: webhook, url: 'http://{{ appointment.custom.host }}/x', body: x}\n"
                                      "  - {type: webhook, url: 'https://93.184.216.34/x', body: x}\n"
                                      "  - {type: email, to: [customer], subject: s, body: b,\n"
                                      "     attachments: ['http://192.168.1.9/invoice.pdf']}\n")
    env = {"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": ""}
    refused = CliRunner().invoke(main, ["workflow", "add", names], env=env)
    assert refused.exit_code == 1 and "actions[3].attachments[0]: 192.168.1.9 is a private address" in refused.output
    assert "actions[0]" not in refused.output and "actions[1]" not in refused.output  # names: checked at send time
    allowed = {**env, "APPTFLOW_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
               "APPTFLOW_DAEMON_ATTACHMENTS_ALLOW_PRIVATE_ADDRESSES": "true"}
    for path in (hooks, names):
        result = CliRunner().invoke(main, ["workflow", "add", path], env=allowed)
        assert result.exit_code == 0, result.output
    assert sql(engine, "SELECT count(*) FROM workflows") == [(2,)]


def test_replace_keeps_the_id_and_the_actions_and_moves_a_planned_firing(cli, engine, db_url, tmp_path):
    reminder = ("name: reminder\ntrigger: {type: appointment_starts, offset: -1h}\nactions:\n"
                "  - {type: email, to: [customer], subject: 'In an hour', body: b}\n")
    workflow = added_id(cli("workflow", "add", write(tmp_path, "r.yaml", reminder)))
    [(action,)] = sql(engine, "SELECT id FROM workflow_actions")
    starts = dt.datetime(2030, 1, 1, 10, 0, tzinfo=dt.timezone.utc)
    book(engine, seed(engine), starts_at=starts.isoformat(), ends_at=(starts + dt.timedelta(hours=1)).isoformat())
    daemon = Daemon(make_config(db_url, APPTFLOW_DAEMON_POLL_INTERVAL="100ms"), engine=engine)
    daemon.start()
    try:
        def run_at():
            return [r[0] for r in sql(engine, "SELECT next_run_time FROM apscheduler_jobs")]
        wait_until(lambda: run_at() == [(starts - dt.timedelta(hours=1)).timestamp()])
        exported = cli("workflow", "export", str(workflow)).output
        edited = write(tmp_path, "edited.yaml", exported.replace("-1h", "-2h").replace("In an hour", "In two hours"))
        result = cli("workflow", "replace", str(workflow), edited)
        assert result.exit_code == 0 and f"replaced workflow {workflow}: reminder" in result.output, result.output
        wait_until(lambda: run_at() == [(starts - dt.timedelta(hours=2)).timestamp()])  # the firing moved
    finally:
        daemon.stop()
    assert sql(engine, "SELECT id FROM workflows") == [(workflow,)]
    assert sql(engine, "SELECT id FROM workflow_actions") == [(action,)]  # same type, same place: same action
    assert "In two hours" in cli("workflow", "export", str(workflow)).output


def test_replace_refuses_a_bad_file_or_a_taken_name_and_changes_nothing(cli, engine, tmp_path):
    first = added_id(cli("workflow", "add", write(tmp_path, "a.yaml", MINIMAL.format(name="a"))))
    added_id(cli("workflow", "add", write(tmp_path, "b.yaml", MINIMAL.format(name="b"))))
    taken = cli("workflow", "replace", str(first), write(tmp_path, "c.yaml", MINIMAL.format(name="b")))
    assert taken.exit_code == 1 and "a workflow named 'b' already exists" in taken.output
    bad = cli("workflow", "replace", str(first), write(tmp_path, "d.yaml", "name: a\ntrigger: {type: nope}\n"))
    assert bad.exit_code == 1 and f"workflow {first} unchanged" in bad.output
    missing = cli("workflow", "replace", "999", write(tmp_path, "e.yaml", MINIMAL.format(name="e")))
    assert missing.exit_code == 1 and "no workflow with id 999" in missing.output
    assert sql(engine, "SELECT name FROM workflows ORDER BY id") == [("a",), ("b",)]


def test_apply_replaces_by_name_and_adds_the_new_ones(cli, engine, tmp_path):
    first = added_id(cli("workflow", "add", write(tmp_path, "a.yaml", MINIMAL.format(name="a"))))
    changed = write(tmp_path, "a2.yaml", MINIMAL.format(name="a").replace("subject: s", "subject: changed"))
    new = write(tmp_path, "n.yaml", MINIMAL.format(name="n"))
    result = cli("workflow", "apply", changed, new)
    assert result.exit_code == 0, result.output
    assert f"replaced workflow {first}: a" in result.output and "added workflow" in result.output
    assert "subject: changed" in cli("workflow", "export", str(first)).output
    assert sql(engine, "SELECT name FROM workflows ORDER BY id") == [("a",), ("n",)]


MINIMAL = ("name: {name}\ntrigger: {{type: appointment_created}}\nactions:\n"
           "  - {{type: email, to: [customer], subject: s, body: b}}\n")


@pytest.mark.parametrize("status, message", [
    ("''", "actions[0].status: empty: set_status needs the status to write"),
    ("'  '", "actions[0].status: empty: set_status needs the status to write"),
    ("aproved", "actions[0].status: unknown status 'aproved' (known: approved, canceled, completed, no-show, "
                "pending, rejected, waitlist; configure more in [workflows] statuses); did you mean 'approved'?"),
])
def test_set_status_refuses_an_empty_or_unknown_status(cli, engine, tmp_path, status, message):
    customer = insert(engine, "customers", first_name="A", last_name="B", email="a@b.test")
    insert(engine, "appointments", customer_id=customer, status="waitlist",  # a status the data holds
           starts_at="2030-01-01T10:00:00+00:00", ends_at="2030-01-01T11:00:00+00:00")
    path = write(tmp_path, "s.yaml", f"name: s\ntrigger: {{type: appointment_created}}\nactions:\n"
                                     f"  - {{type: set_status, status: {status}}}\n")
    for command in ("validate", "add"):
        result = cli("workflow", command, path)
        assert result.exit_code == 1 and message in result.output, result.output
    assert sql(engine, "SELECT count(*) FROM workflows") == [(0,)]


@pytest.mark.parametrize("status", ["approved", "no-show", "waitlist", "'{{ appointment.custom.next }}'"])
def test_set_status_accepts_known_held_and_templated_statuses(cli, engine, tmp_path, status):
    customer = insert(engine, "customers", first_name="A", last_name="B", email="a@b.test")
    insert(engine, "appointments", customer_id=customer, status="waitlist",
           starts_at="2030-01-01T10:00:00+00:00", ends_at="2030-01-01T11:00:00+00:00")
    path = write(tmp_path, "s.yaml", f"name: s\ntrigger: {{type: appointment_created}}\nactions:\n"
                                     f"  - {{type: set_status, status: {status}}}\n")
    added_id(cli("workflow", "add", path))


def test_the_known_statuses_are_configurable(db_url, tmp_path):
    path = write(tmp_path, "s.yaml", "name: s\ntrigger: {type: appointment_created}\nactions:\n"
                                     "  - {type: set_status, status: confirmed}\n")
    env = {"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": ""}
    assert CliRunner().invoke(main, ["workflow", "validate", path], env=env).exit_code == 1
    configured = {**env, "APPTFLOW_WORKFLOWS_STATUSES": "pending,confirmed,canceled"}
    result = CliRunner().invoke(main, ["workflow", "validate", path], env=configured)
    assert result.exit_code == 0, result.output


def test_a_misspelt_single_brace_keyword_is_an_unknown_keyword_and_export_writes_jinja(cli, engine, tmp_path):
    bad = write(tmp_path, "b.yaml", "name: b\ntrigger: {type: appointment_created}\nactions:\n"
                                    "  - {type: email, to: [customer], subject: 'Hi {custmer_full_name}', body: b}\n")
    result = cli("workflow", "add", bad)
    assert result.exit_code == 1
    assert "actions[0].subject: unknown keyword 'custmer_full_name' (did you mean 'customer_full_name'?)" \
        in result.output
    good = write(tmp_path, "g.yaml", "name: g\ntrigger: {type: appointment_created}\nactions:\n"
                                     "  - {type: sms, to: ['{customer_phone}'], body: 'Hi {customer_first_name}'}\n")
    workflow = added_id(cli("workflow", "add", good))
    exported = cli("workflow", "export", str(workflow)).output
    assert "{{ customer_first_name }}" in exported and "{{ customer_phone }}" in exported
    assert "{customer_first_name}" not in exported.replace("{{ customer_first_name }}", "")


def test_a_booknetic_keyword_apptflow_does_not_offer_is_refused_with_the_reason(cli, engine, tmp_path):
    path = write(tmp_path, "p.yaml", "name: p\ntrigger: {type: customer_created}\nactions:\n"
                                     "  - {type: email, to: [customer], subject: s,"
                                     " body: 'Password: {customer_password}'}\n")
    result = cli("workflow", "add", path)
    assert result.exit_code == 1
    assert ("actions[0].body: 'customer_password' is a Booknetic keyword that apptflow does not offer: apptflow "
            "never sees a customer's password, and would not send one") in result.output
    assert sql(engine, "SELECT count(*) FROM workflows") == [(0,)]
