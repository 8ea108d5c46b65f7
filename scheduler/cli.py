"""The ``apptflow`` command line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import click
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from channels.netguard import literal_refusal
from db import NotFound, deliveries, events, inbound, instances, schema
from db import booknetic as booknetic_tables
from db import booking as bookings
from db import jobs as job_queries
from db import mapping as booking_mapping
from db import workflows as store
from db.codes import STORED_STATUSES, CapturedTable
from db.errors import describe, unavailable
from db.servers import UnsupportedServer
from engine import admission, preview, quiet_hours
from engine.booknetic import merge_locales as merge_booknetic_locales
from engine.booknetic import translate as translate_booknetic
from engine.context import zone
from engine.document import dump_yaml, split_document, to_document, workflow_from_row
from engine.errors import InvalidWorkflow, Problem
from engine.replies import FAILED
from engine.validation import warnings as workflow_warnings
from engine.variants import with_locale
from scheduler import logs
from scheduler.config import Config, ConfigError, load_config, seconds
from scheduler.daemon import Daemon, utc_now
from scheduler.inbound import InboundError
from scheduler.leader import Disagreement
from scheduler.metrics import MetricsError
from scheduler.recurring import listed_jobs
from scheduler.systemd import notify as notify_systemd


class App:
    """What every command needs: the configuration and, on demand, the database."""

    def __init__(self, config: Config, config_file: str | None = None):
        self.config = config
        self.config_file = config_file  # as given on the command line: read again on SIGHUP
        self._engine: Engine | None = None
        self.daemon = False  # `apptflow run`: its statements bounded by [database] statement_timeout

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.config.connect(daemon=self.daemon)
        return self._engine

    def ready_engine(self, *, any_mapping: bool = False) -> Engine:
        """The engine of a database whose schema is installed with the configured mapping (or, with
        *any_mapping*, whichever is); a clear error otherwise."""
        try:
            with self.engine.connect() as conn:
                revision = schema.current_revision(conn)
                found = booking_mapping.installed(conn) if revision is not None else None
        except OperationalError as error:
            raise click.ClickException(f"cannot reach the database: {describe(error)}") from None
        if revision is None:
            raise click.ClickException("the database has no apptflow schema yet: run `apptflow db init`")
        configured = self.config.get("database", "mapping")
        if any_mapping:
            return self.engine
        if found is not None and not configured:
            raise click.ClickException(f"the database is installed with mapping {found.name}: set [database] "
                                       "mapping to it")
        if found is None and configured:
            raise click.ClickException(f"[database] mapping is {configured!r}, but the database has apptflow's "
                                       "reference tables: run `apptflow db init` with it, or unset it")
        return self.engine


pass_app = click.make_pass_decorator(App)


class _Commands(click.Group):
    """Any command: a database that cannot be reached is one line on stderr and exit 1, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UnsupportedServer as error:
            raise click.ClickException(str(error)) from None
        except Exception as error:
            if unavailable(error):
                raise click.ClickException(f"cannot reach the database: {describe(error)}") from None
            raise


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML configuration file (default: $APPTFLOW_CONFIG, then /etc/apptflow/apptflow.toml).")
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """apptflow: workflow automation for appointment-booking databases."""
    try:
        ctx.obj = App(load_config(config_file), config_file)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    ctx.call_on_close(lambda: ctx.obj._engine and ctx.obj._engine.dispose())


# --- config -----------------------------------------------------------------

@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@pass_app
def config_check(app: App) -> None:
    """Check the configuration and print it as it takes effect: secrets masked, each value's origin."""
    config = app.config
    click.echo(f"configuration file: {config.source or 'none (defaults and environment only)'}")
    for section, keys in config.values.items():
        click.echo(f"[{section}]")
        for key in keys:
            shown = config.shown(section, key)
            value = json.dumps(shown)  # as TOML writes it: "1s", 8, false
            click.echo(f"  {key} = {value}  # {config.origin(section, key)}")
    click.echo("configuration OK")


# --- db ---------------------------------------------------------------------

@main.group()
def db() -> None:
    """Create or migrate the schema and the change-capture triggers."""


def _mapping(app: App) -> booking_mapping.Mapping | None:
    """The configured mapping ([database] mapping), read and checked; None for the reference tables."""
    name = app.config.get("database", "mapping")
    if not name:
        return None
    try:
        return booking_mapping.load(name, application_prefix=app.config.get("database", "application_prefix"),
                                    tenant=app.config.get("database", "tenant"))
    except booking_mapping.MappingError as error:
        raise click.ClickException("\n".join(f"mapping {error.source}: {p}" for p in error.problems)) from None


def _install(app: App) -> None:
    mapping = _mapping(app)
    try:
        before, after = schema.upgrade(app.engine, mapping)
    except OperationalError as error:
        raise click.ClickException(f"cannot reach the database: {describe(error)}") from None
    except booking_mapping.MappingError as error:
        raise click.ClickException("; ".join(error.problems)) from None
    except DBAPIError as error:  # the mapping's SQL, refused by the database
        raise click.ClickException(f"the database refused the mapping: {describe(error)}") from None
    if before is None:
        click.echo(f"schema created at revision {after}; change capture installed")
    elif before == after:
        click.echo(f"schema already at revision {after}; change capture reinstalled")
    else:
        click.echo(f"schema migrated from revision {before} to {after}; change capture reinstalled")
    if mapping is not None:
        click.echo(f"reading the application's tables through mapping {mapping.name}")
        with app.engine.connect() as conn:
            _, problems = booking_mapping.check(conn)
        if problems:
            for problem in problems:
                click.echo(f"problem: {problem}", err=True)
            raise click.ClickException("the mapping is installed but incomplete: see `apptflow db check`")


@db.command("check")
@pass_app
def db_check(app: App) -> None:
    """Check the booking data apptflow reads (reference tables or a mapping): every column, change capture,
    changes that could not be captured. Exits 1 if anything is wrong."""
    configured = _mapping(app)
    with app.ready_engine(any_mapping=True).connect() as conn:
        fine, problems = booking_mapping.check(conn)
        found = booking_mapping.installed(conn)
    if (found and found.name) != (configured and configured.name):
        problems.append(f"[database] mapping is {configured.name if configured else 'none'} but the database is "
                        f"installed with {found.name if found else 'the reference tables'}: run apptflow db upgrade")
    for line in fine:
        click.echo(f"ok: {line}")
    for line in problems:
        click.echo(f"problem: {line}")
    if problems:
        raise click.exceptions.Exit(1)


@db.command("init")
@pass_app
def db_init(app: App) -> None:
    """Create the tables that do not exist and install change capture (idempotent)."""
    _install(app)


@db.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Migrate an older schema to this version's and reinstall change capture (idempotent)."""
    _install(app)


@db.command("uninstall")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def db_uninstall(app: App, yes: bool) -> None:
    """Remove every trigger, function and table apptflow added; the booking data stays as it is.

    Workflows, the delivery history and planned reminders are deleted. Stop
    `apptflow run` first.
    """
    if not yes:
        click.confirm("Remove apptflow's tables (workflows, delivery history, planned jobs) and triggers?",
                      abort=True)
    try:
        removed = schema.uninstall(app.engine)
    except OperationalError as error:
        raise click.ClickException(f"cannot reach the database: {describe(error)}") from None
    for thing in removed:
        click.echo(f"removed {thing}")
    click.echo("apptflow is uninstalled" if removed else "apptflow was not installed here")


# --- workflow ---------------------------------------------------------------

@main.group()
def workflow() -> None:
    """Add, inspect, enable, disable and delete workflows."""


def _report(source: str, problems) -> None:
    for problem in problems:
        click.echo(f"{source}: {problem}", err=True)


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise click.ClickException(f"{path}: {error.strerror}") from None


def _admission(app: App, conn) -> admission.Admission:
    """What admitting a workflow into this database depends on, with this configuration."""
    return admission.Admission(
        known=store.known_ids(conn, app.config.get("workflows", "statuses")),
        workflow_named=lambda name: store.workflow_id_by_name(conn, name),
        refusal=literal_refusal,
        allowed=lambda setting: bool(app.config.get(*setting)))


def _warn(source: str, workflow) -> None:
    """What a valid workflow may still meet (WhatsApp's 24-hour window): said, and the exit status stays 0."""
    for warning in workflow_warnings(workflow) if workflow is not None else ():
        click.echo(f"{source}: warning: {warning}", err=True)


@workflow.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@pass_app
def workflow_validate(app: App, files: tuple[str, ...]) -> None:
    """Check workflow files without saving: every error, with its place."""
    engine = app.ready_engine()
    failed = False
    with engine.connect() as conn:
        rules = _admission(app, conn)
        for path in files:
            parsed, problems = admission.check_text(_read_file(path), rules, set())
            _report(path, problems)
            failed |= bool(problems)
            if not problems:
                _warn(path, parsed)
                click.echo(f"{path}: ok ({parsed.name})")
    if failed:
        sys.exit(1)


def _all_valid(conn, app: App, files: tuple[str, ...], done: str, *, by_name: bool = False) -> list:
    """Every file's workflow; if any file is invalid, each one's problems and nothing is *done*."""
    texts = [(path, _read_file(path)) for path in files]
    checked = admission.check_all(texts, _admission(app, conn), by_name=by_name)
    failed = [c for c in checked if c.problems]
    for c in failed:
        _report(c.source, c.problems)
    if failed:
        raise click.ClickException(f"nothing {done}: {len(failed)} of {len(files)} file(s) invalid")
    for c in checked:
        _warn(c.source, c.workflow)
    return [c.workflow for c in checked]


@workflow.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@pass_app
def workflow_add(app: App, files: tuple[str, ...]) -> None:
    """Add workflows from YAML files; if any file is invalid, none is added."""
    with app.ready_engine().begin() as conn:
        for parsed in _all_valid(conn, app, files, "added"):
            workflow_id = store.insert_workflow(conn, split_document(to_document(parsed)))
            click.echo(f"added workflow {workflow_id}: {parsed.name}")


@workflow.command("replace")
@click.argument("workflow_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False))
@pass_app
def workflow_replace(app: App, workflow_id: int, file: str) -> None:
    """Replace workflow ID with the definition in FILE, keeping its id (an exported file, edited).

    Its planned firings follow the new definition; pending deliveries of an action kept at its
    position with its type are sent with the new text."""
    with app.ready_engine().begin() as conn:
        try:
            store.get_workflow(conn, workflow_id)
        except NotFound as error:
            raise click.ClickException(str(error)) from None
        parsed, problems = admission.check_text(_read_file(file), _admission(app, conn), set(),
                                                replacing=workflow_id)
        if problems:
            _report(file, problems)
            raise click.ClickException(f"workflow {workflow_id} unchanged: {file} is invalid")
        _warn(file, parsed)
        store.replace_workflow(conn, workflow_id, split_document(to_document(parsed)))
    click.echo(f"replaced workflow {workflow_id}: {parsed.name}")


@workflow.command("apply")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@pass_app
def workflow_apply(app: App, files: tuple[str, ...]) -> None:
    """Add or replace workflows from YAML files, matched by name; if any file is invalid, none is applied."""
    with app.ready_engine().begin() as conn:
        for parsed in _all_valid(conn, app, files, "applied", by_name=True):
            parts = split_document(to_document(parsed))
            existing = store.workflow_id_by_name(conn, parsed.name)
            if existing is None:
                click.echo(f"added workflow {store.insert_workflow(conn, parts)}: {parsed.name}")
            else:
                store.replace_workflow(conn, existing, parts)
                click.echo(f"replaced workflow {existing}: {parsed.name}")


def _load(app: App, workflow_id: int):
    engine = app.ready_engine()
    with engine.connect() as conn:
        try:
            row = store.get_workflow(conn, workflow_id)
        except NotFound as error:
            raise click.ClickException(str(error)) from None
        known = store.known_ids(conn, app.config.get("workflows", "statuses"))
    try:
        return row, workflow_from_row(row, known=known), None
    except InvalidWorkflow as error:
        return row, None, error


@workflow.command("list")
@pass_app
def workflow_list(app: App) -> None:
    """Every workflow with its state; invalid rows show their errors."""
    engine = app.ready_engine()
    with engine.connect() as conn:
        rows = store.list_workflows(conn)
        known = store.known_ids(conn, app.config.get("workflows", "statuses"))
    if not rows:
        click.echo("no workflows")
        return
    click.echo(f"{'ID':>4}  {'STATE':<8}  {'TRIGGER':<27}  {'ACTIONS':<24}  NAME")
    for row in rows:
        try:
            workflow_from_row(row, known=known)
            error = None
        except InvalidWorkflow as invalid:
            error = invalid
        state = "invalid" if error else ("enabled" if row.enabled else "disabled")
        actions = ",".join(a.type for a in row.actions) or "-"
        click.echo(f"{row.id:>4}  {state:<8}  {row.trigger_type:<27}  {actions:<24}  {row.name}")
        for problem in error.problems if error else ():
            click.echo(f"{'':>6}error: {problem}")


@workflow.command("show")
@click.argument("workflow_id", type=int)
@pass_app
def workflow_show(app: App, workflow_id: int) -> None:
    """One workflow: its state, its errors if any, and its definition."""
    row, parsed, error = _load(app, workflow_id)
    state = "invalid" if error else ("enabled" if row.enabled else "disabled")
    click.echo(f"workflow {row.id}: {row.name}")
    click.echo(f"state:    {state}")
    click.echo(f"created:  {row.created_at.isoformat()}")
    click.echo(f"updated:  {row.updated_at.isoformat()}")
    if error:
        for problem in error.problems:
            click.echo(f"error:    {problem}")
        return
    click.echo("")
    click.echo(dump_yaml(to_document(parsed)), nl=False)


@workflow.command("export")
@click.argument("workflow_id", type=int)
@pass_app
def workflow_export(app: App, workflow_id: int) -> None:
    """Print the workflow as YAML that `workflow add` accepts back."""
    row, parsed, error = _load(app, workflow_id)
    if error:
        _report(f"workflow {workflow_id}", error.problems)
        raise click.ClickException("cannot export an invalid workflow: fix it first")
    click.echo(dump_yaml(to_document(parsed)), nl=False)


def _change(app: App, workflow_id: int, change, done: str) -> None:
    engine = app.ready_engine()
    try:
        with engine.begin() as conn:
            change(conn, workflow_id)
    except NotFound as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"workflow {workflow_id} {done}")


@workflow.command("enable")
@click.argument("workflow_id", type=int)
@pass_app
def workflow_enable(app: App, workflow_id: int) -> None:
    """Enable a workflow."""
    _change(app, workflow_id, lambda conn, i: store.set_enabled(conn, i, True), "enabled")


@workflow.command("disable")
@click.argument("workflow_id", type=int)
@pass_app
def workflow_disable(app: App, workflow_id: int) -> None:
    """Disable a workflow (it keeps its definition and history)."""
    _change(app, workflow_id, lambda conn, i: store.set_enabled(conn, i, False), "disabled")


@workflow.command("delete")
@click.argument("workflow_id", type=int)
@pass_app
def workflow_delete(app: App, workflow_id: int) -> None:
    """Delete a workflow and its actions (its delivery history stays)."""
    _change(app, workflow_id, store.delete_workflow, "deleted")


# --- daemon -----------------------------------------------------------------

@main.group("import")
def import_group() -> None:
    """Bring another product's workflows over."""


@import_group.command("booknetic")
@click.option("--dry-run", is_flag=True, help="Show the workflows it would add, and add nothing.")
@click.option("--merge-locales", is_flag=True,
              help="Make workflows that differ only by their locale and texts one workflow with per-locale texts.")
@pass_app
def import_booknetic(app: App, dry_run: bool, merge_locales: bool) -> None:
    """Add apptflow workflows equivalent to Booknetic's own (its bkntc_workflows tables).

    Each one it cannot translate is reported with the reason, and not added; the
    exit status is 1 when that happens. Booknetic goes on sending its own until its
    workflows are switched off there.
    """
    prefix, tenant = app.config.get("database", "application_prefix"), app.config.get("database", "tenant")
    engine = app.ready_engine()
    with engine.begin() as conn:
        try:
            found = booknetic_tables.read_workflows(conn, prefix, tenant)
        except booknetic_tables.NoBookneticWorkflows as error:
            raise click.ClickException(f"{error} ([database] application_prefix = {prefix!r})") from None
        rules = _admission(app, conn)
        names: set[str] = set()
        added, refused = 0, 0
        translations = [translate_booknetic(workflow) for workflow in found]
        for translation in merge_booknetic_locales(translations) if merge_locales else translations:
            for note in translation.notes:
                click.echo(f"{translation.source}: note: {note}")
            parsed, problems = (None, [Problem(place="", message=p) for p in translation.problems])
            if translation.document is not None:
                parsed, problems = admission.check_document(translation.document, rules, names)
            if problems:
                refused += 1
                _report(f"{translation.source}: not imported", problems)
                continue
            for warning in workflow_warnings(parsed):
                click.echo(f"{translation.source}: warning: {warning}")
            if dry_run:
                click.echo(f"# {translation.source}\n---\n" + dump_yaml(to_document(parsed)), nl=False)
            else:
                workflow_id = store.insert_workflow(conn, split_document(to_document(parsed)))
                click.echo(f"{translation.source}: added as workflow {workflow_id}: {parsed.name}")
            added += 1
    verb = "would add" if dry_run else "added"
    click.echo(f"{verb} {added} of {len(found)} Booknetic workflows; {refused} not translated")
    if added and not dry_run:
        click.echo("Booknetic still sends its own: switch its workflows off (Booknetic > Workflows) "
                   "once apptflow runs")
    if refused:
        sys.exit(1)


@main.command("run")
@pass_app
def run(app: App) -> None:
    """Run the daemon in the foreground (systemd runs this); SIGTERM or SIGINT stops it cleanly."""
    logs.setup(app.config.get("daemon", "log_level"), app.config.get("daemon", "log_format"))
    app.daemon = True
    engine = app.ready_engine()
    daemon = Daemon(app.config, engine=engine)
    stop, hangup = threading.Event(), threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: hangup.set())
    try:
        daemon.start()
    except (MetricsError, InboundError, Disagreement) as error:
        daemon.metrics.close()
        raise click.ClickException(str(error)) from None
    while not stop.is_set():
        if hangup.wait(0.2):
            hangup.clear()
            _reload(app, daemon)
    daemon.stop()


def _reload(app: App, daemon: Daemon) -> None:
    """SIGHUP: read the configuration again; a bad one is refused and the running one kept."""
    notify_systemd(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
    try:
        daemon.reload(load_config(app.config_file))
    except ConfigError as error:
        logging.getLogger("scheduler.daemon").error(
            "configuration not reloaded, the running one is kept: %s", error)
    finally:
        notify_systemd("READY=1")


def _share(instance, waiting_in: dict[int, int]) -> str:
    """What an instance leads, and the change events waiting there (docs/scale-out.md)."""
    led = instances.led(instance)
    if not led:
        return "; leads no partition"
    count = instance.partitions or 1
    which = "the partition" if count == 1 else f"partitions {', '.join(map(str, led))} of {count}"
    return f"; leads {which}, {sum(waiting_in.get(p, 0) for p in led)} events waiting there"


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


@main.command("log")
@click.option("--workflow", "workflow_id", type=int, help="Only this workflow's deliveries.")
@click.option("--appointment", "appointment_id", type=int, help="Only this appointment's deliveries.")
@click.option("--status", type=click.Choice([status.value for status in STORED_STATUSES]))
@click.option("--undelivered", is_flag=True, help="Only messages the provider did not deliver or refused.")
@click.option("--limit", type=int, default=50, show_default=True)
@pass_app
def log(app: App, workflow_id, appointment_id, status, undelivered, limit) -> None:
    """Delivery history, newest first: what was sent to whom, when, every error, and what the provider said
    of it since (``sent → delivered``); then the messages received (times in UTC)."""
    with app.ready_engine().connect() as conn:
        rows = deliveries.history(conn, workflow_id=workflow_id, appointment_id=appointment_id,
                                  status=status, provider_statuses=FAILED if undelivered else None, limit=limit)
        heard = [] if undelivered or workflow_id or status else [
            m for m in inbound.received(conn, limit=limit)
            if appointment_id is None or m.appointment_id == appointment_id]
    if not rows:
        click.echo("no deliveries")
    else:
        click.echo(f"{'ID':>5}  {'UPDATED (UTC)':<19}  {'WF':>3}  {'ACTION':<10}  {'SUBJECT':<16}  "
                   f"{'STATUS':<8}  {'TRIES':>5}  RECIPIENTS")
    for d in rows:
        subject = f"{CapturedTable(d.subject_table).singular} {d.subject_id}"
        click.echo(f"{d.id:>5}  {_when(d.sent_at or d.updated_at):<19}  {d.workflow_id:>3}  "
                   f"{d.action_type:<10}  {subject:<16}  {_status_shown(d):<8}  {d.attempts:>5}  "
                   f"{d.recipients or '-'}")
        if d.error:
            click.echo(f"{'':>7}error: {d.error}")
    if heard:
        click.echo("received:")
        for m in heard:
            about = f"appointment {m.appointment_id}" if m.appointment_id else "no appointment"
            click.echo(f"{m.id:>5}  {_when(m.received_at):<19}  {m.channel:<8}  {m.sender:<16}  "
                       f"{m.outcome:<9}  {about:<16}  {m.body!r}")


def _status_shown(d) -> str:
    """apptflow's status, and the provider's beside it once a receipt came: ``sent → undelivered (30003: …)``."""
    if not d.provider_status:
        return d.status
    error = f" ({d.provider_error})" if d.provider_error and d.provider_status in FAILED else ""
    return f"{d.status} → {d.provider_status}{error}"


@main.group()
def optouts() -> None:
    """The opt-out list: numbers that get no SMS or WhatsApp message (STOP adds them, START removes them)."""


def _optout_channel(value: str) -> str:
    from engine.actions import action_type, names

    channels = sorted({action_type(name).optout_channel for name in names()} - {None})
    if value not in channels:
        raise click.BadParameter(f"{value!r} is not a channel with an opt-out list ({', '.join(channels)})")
    return value


def _number(value: str) -> str:
    from channels.phone import check_e164
    from channels.base import PermanentSendError

    try:
        return check_e164(value.strip())
    except PermanentSendError as error:
        raise click.BadParameter(str(error)) from None


@optouts.command("list")
@click.option("--channel", help="Only this channel's list.")
@pass_app
def optouts_list(app: App, channel: str | None) -> None:
    """Every number on an opt-out list, newest first, with when and why."""
    with app.ready_engine().connect() as conn:
        found = inbound.list_optouts(conn, _optout_channel(channel) if channel else None)
    if not found:
        click.echo("no opt-outs")
    for entry in found:
        click.echo(f"{entry.channel:<9}  {entry.address:<16}  since {_when(entry.since)} UTC  {entry.reason}")


@optouts.command("add")
@click.argument("channel")
@click.argument("number")
@click.option("--reason", default="added by the operator", show_default=True)
@pass_app
def optouts_add(app: App, channel: str, number: str, reason: str) -> None:
    """Put NUMBER on CHANNEL's opt-out list (sms or whatsapp): it gets no more messages there."""
    channel, number = _optout_channel(channel), _number(number)
    with app.ready_engine().begin() as conn:
        added = inbound.add_optout(conn, channel, number, utc_now(), reason)
    click.echo(f"{number} {'added to' if added else 'was already on'} the {channel} opt-out list")


@optouts.command("remove")
@click.argument("channel")
@click.argument("number")
@pass_app
def optouts_remove(app: App, channel: str, number: str) -> None:
    """Take NUMBER off CHANNEL's opt-out list."""
    channel, number = _optout_channel(channel), _number(number)
    with app.ready_engine().begin() as conn:
        removed = inbound.remove_optout(conn, channel, number)
    if not removed:
        raise click.ClickException(f"{number} is not on the {channel} opt-out list")
    click.echo(f"{number} removed from the {channel} opt-out list")


@main.command("retry")
@click.argument("delivery_id", type=int)
@pass_app
def retry(app: App, delivery_id: int) -> None:
    """Send a dead, unknown, skipped or missed delivery again (the running daemon picks it up)."""
    with app.ready_engine().begin() as conn:
        try:
            deliveries.requeue(conn, delivery_id, utc_now())
        except NotFound as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"delivery {delivery_id} queued again")


@main.command("status")
@pass_app
def status(app: App) -> None:
    """Daemon health: running instances, event backlog and its age, deliveries by status."""
    now = utc_now()
    heartbeat = seconds(app.config.get("daemon", "heartbeat"))
    with app.ready_engine().connect() as conn:
        alive = instances.running(conn, now - dt.timedelta(seconds=3 * heartbeat))
        waiting, oldest = events.backlog(conn)
        count = max((i.partitions or 1 for i in alive), default=1)
        waiting_in = events.waiting_by_partition(conn, count) if count > 1 else {0: waiting}
        failed = events.failed_events(conn)
        lost, _, last_lost = events.capture_failures(conn)
        counts = deliveries.counts_by_status(conn)
    if alive:
        for instance in alive:
            click.echo(f"daemon:      running on {instance.hostname} (pid {instance.pid}), "
                       f"since {_when(instance.started_at)} UTC{_share(instance, waiting_in)}")
    else:
        click.echo("daemon:      not running (no heartbeat)")
    age = f", oldest {(now - oldest).total_seconds():.1f}s old" if oldest else ""
    click.echo(f"events:      {waiting} waiting{age}; {failed} failed")
    if lost:
        click.echo(f"capture:     {lost} change(s) could not be captured, the last: {last_lost} "
                   "(see `apptflow db check`)")
    summary = ", ".join(f"{counts[s]} {s}" for s in sorted(counts)) or "none"
    click.echo(f"deliveries:  {summary}")
    with app.engine.connect() as conn:
        planned, aside = job_queries.count_firings(conn), len(job_queries.failed_jobs(conn))
    click.echo(f"jobs:        {planned} time-offset firings planned; {aside} kept aside (see `apptflow jobs`)")


@workflow.command("test")
@click.argument("workflow_id", type=int)
@click.option("--appointment", "appointment_id", type=int, help="Render against this appointment.")
@click.option("--customer", "customer_id", type=int, help="Render against this customer (customer_created).")
@click.option("--ignore-filters", is_flag=True, help="Render even when the filters do not match.")
@click.option("--locale", help="Render as for a customer of this locale (e.g. fr_CA): its variant and dates.")
@pass_app
def workflow_test(app: App, workflow_id: int, appointment_id: int | None, customer_id: int | None,
                  ignore_filters: bool, locale: str | None) -> None:
    """Check the filters against one appointment (or customer), then render every action and print it;
    send nothing. Rendering waits for matching filters unless --ignore-filters."""
    row, parsed, error = _load(app, workflow_id)
    if error:
        _report(f"workflow {workflow_id}", error.problems)
        raise click.ClickException("the workflow is invalid")
    with app.engine.connect() as conn:
        if appointment_id is not None:
            booking = bookings.load_booking(conn, appointment_id)
        elif customer_id is not None:
            booking = bookings.load_customer_booking(conn, customer_id)
        else:
            raise click.UsageError("give --appointment N (or --customer N for customer triggers)")
    if booking is None:
        raise click.ClickException("no such appointment or customer")
    if locale:
        booking = with_locale(booking, locale)
    subject = f"appointment {appointment_id}" if appointment_id is not None else f"customer {customer_id}"
    checks = preview.filter_checks(parsed, booking)
    for line in preview.filter_lines(checks):
        click.echo(line)
    if not all(check.holds for check in checks):
        if not ignore_filters:
            click.echo(f"the filters do not match {subject}: the workflow would not run for it "
                       "(--ignore-filters renders anyway)")
            return
        click.echo(f"the filters do not match {subject}; rendering anyway (--ignore-filters)")
    shown = preview.render_preview(parsed, booking, company=dict(app.config.section("company")), now=utc_now())
    for line in shown.lines:
        click.echo(line)
    if shown.failed:
        sys.exit(1)


@main.command("demo")
@click.option("--database", type=click.Path(dir_okay=False), default=None,
              help="SQLite file to create (default: a new temporary file).")
def demo(database: str | None) -> None:
    """A self-contained demonstration on the embedded default: no configuration, nothing sent."""
    import tempfile

    from scheduler.demo import run_demo

    if database is None:
        database = str(Path(tempfile.mkdtemp(prefix="apptflow-demo-")) / "demo.db")
    elif Path(database).exists():
        raise click.ClickException(f"{database} exists; the demo creates a new database")
    produced = run_demo(Path(database), click.echo)
    click.echo(f"\n{produced} messages produced; the database is kept at {database} "
               f"(try: APPTFLOW_DATABASE_URL=sqlite:///{database} apptflow log)")


def _local(moment: dt.datetime, timezone: str | None) -> str:
    local = moment.astimezone(zone(timezone))
    return f"{_when(local)} {local.tzname()}"


def _job_line(run_at: dt.datetime, timezone: str | None, workflow_id: int, workflow_name: str | None,
              appointment_id: int | None, customer: str | None) -> str:
    name = workflow_name if workflow_name is not None else "(deleted)"
    appointment = appointment_id if appointment_id is not None else "-"
    return (f"{_when(run_at):<19}  {_local(run_at, timezone):<25}  {f'{workflow_id} {name}'[:32]:<32}  "
            f"{appointment:>5}  {customer if customer is not None else '-'}")


@main.command("jobs")
@click.option("--workflow", "workflow_id", type=int, help="Only this workflow's firings.")
@click.option("--appointment", "appointment_id", type=int, help="Only this appointment's firings.")
@pass_app
def jobs_command(app: App, workflow_id: int | None, appointment_id: int | None) -> None:
    """Upcoming time-offset firings: when (UTC and the location's time), workflow, appointment, customer, and the
    due time of one its send window moved; then the deliveries waiting for their send window."""
    with app.ready_engine().connect() as conn:
        firings = job_queries.upcoming_firings(conn, workflow_id=workflow_id, appointment_id=appointment_id)
        waiting = [(d, record) for d in job_queries.waiting_deliveries(conn, utc_now(), workflow_id=workflow_id,
                                                                      appointment_id=appointment_id)
                   if (record := quiet_hours.waiting(d.context, d.next_attempt_at)) is not None]
        failed = job_queries.failed_jobs(conn)
        recurring = listed_jobs(conn, workflow_id) if appointment_id is None else []
        names = {row.id: row.name for row in store.list_workflows(conn)} if recurring else {}
    if not firings and not recurring and not waiting:
        click.echo("no upcoming firings")
    elif firings:
        click.echo(f"{'WHEN (UTC)':<19}  {'LOCAL TIME':<25}  {'WORKFLOW':<32}  {'APPT':>5}  CUSTOMER")
    for firing in firings:
        due = f"  [due {_local(firing.planned_at, firing.timezone)}]" if firing.planned_at is not None else ""
        click.echo(_job_line(firing.run_at, firing.timezone, firing.workflow_id, firing.workflow_name,
                             firing.appointment_id, firing.customer) + due)
    if recurring:  # schedules, birthdays, recalls: one job per workflow and target
        click.echo(f"{'WHEN (UTC)':<19}  {'WORKFLOW':<32}  FOR")
    for when, wf, whom in recurring:
        workflow_name = f"{wf} {names.get(wf, '(deleted)')}"[:32]
        click.echo(f"{_when(when):<19}  {workflow_name:<32}  {whom}")
    if waiting:
        click.echo("deliveries waiting for their send window:")
    for delivery, record in waiting:
        click.echo(_job_line(delivery.next_attempt_at, record["zone"], delivery.workflow_id, delivery.workflow_name,
                             delivery.appointment_id, delivery.customer)
                   + f"  [due {_local(dt.datetime.fromisoformat(record['due']), record['zone'])}; delivery "
                     f"{delivery.id}, {delivery.action_type}]")
    for job, _, error, failed_at in failed:
        click.echo(f"kept aside (cannot be restored): {job}, since {_when(failed_at)} UTC: {error}")
