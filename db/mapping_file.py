"""A mapping file: the shared model of a mapping, how one is read and checked.

A mapping is a YAML file of plain SQL (see docs/existing-databases.md):

- ``views``: one SELECT per reference table (appointments, customers, services,
  staff, locations) giving its reference columns over the application's tables,
  with apptflow's status codes;
- ``statuses``: apptflow's status code → the application's value, the one
  declaration of the translation both ways: installing the mapping generates
  ``<schema>.status_code(value)`` from it, through which the appointments view
  gives its ``status``, and ``set_status`` writes the application's value
  (``:status``, already translated, and ``:appointment_id``); or
  ``read_only: <why>``;
- ``capture``: the application's tables whose writes matter, each with SQL
  expressions over ``NEW`` / ``OLD`` giving the appointment or customer ids a
  changed row affects; optionally ``at_commit``, a condition over ``OLD`` and
  ``NEW`` picking the updates captured only when their transaction commits,
  once its later writes are visible too (PostgreSQL);
- ``continues`` (optional): for an appointment that appears, the id of the one
  it replaces (an application that reschedules by creating a new booking);
- ``absent``: reference columns the application has no data for, with why; the
  keywords, recipient words (``customer``, ``staff``) and filters that read them
  are refused when a workflow is added.

This module knows no server: each server's installer (:mod:`db.pg_mapping`,
:mod:`db.mysql_mapping`) reads the model from here, and :mod:`db.mapping`
installs and checks a mapping through the connection's server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from db.tables import BOOKING_TABLES

TARGETS = ("appointments", "customers")  # the tables whose changes are events
STATUS_FUNCTION = "status_code"  # the application's status → apptflow's code, generated from ``statuses``
COLUMNS = {table.name: tuple(table.c.keys()) for table in BOOKING_TABLES}
_SHIPPED = resources.files("db").joinpath("mappings")


class MappingError(ValueError):
    """A mapping file that cannot be used; ``problems`` say where and why."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class MappingRefusal(ValueError):
    """A write the installed mapping cannot make (a read-only mapping, a status it does not translate)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Capture:
    """One of the application's tables, and how a changed row leads to the rows of *targets* it affects."""

    table: str
    targets: dict[str, tuple[str, ...]]  # appointments | customers → SQL expressions over NEW / OLD
    at_commit: str | None = None  # an SQL condition over OLD and NEW: such an update is captured at commit


@dataclass(frozen=True, slots=True, kw_only=True)
class Mapping:
    name: str
    source: str = ""
    views: dict[str, str]
    statuses: dict[str, str] = field(default_factory=dict)
    set_status: str | None = None
    read_only: str | None = None
    capture: tuple[Capture, ...] = ()
    continues: str | None = None
    absent: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Installed:
    """What the daemon and the CLI need of the installed mapping (read from the database)."""

    name: str
    statuses: dict[str, str]
    set_status: str | None
    read_only: str | None
    absent: dict[str, str]


# --- reading a mapping file ---------------------------------------------------------------------------------

def shipped() -> list[str]:
    """The mappings that come with apptflow, by name."""
    return sorted(p.name.removesuffix(".yaml") for p in _SHIPPED.iterdir() if p.name.endswith(".yaml"))


def load(name_or_path: str, *, application_prefix: str = "", tenant: int | None = None) -> Mapping:
    """A shipped mapping by name (``calcom``) or a mapping file; MappingError with every problem.

    A mapping's SQL may leave two things to the configuration: ``{application_prefix}`` becomes
    *application_prefix* (the application's table prefix, WordPress's ``wp_``), ``{tenant}`` the id of the
    one tenant of a multi-tenant application to read, or NULL for every tenant."""
    if name_or_path in shipped():
        source, raw = name_or_path, _SHIPPED.joinpath(f"{name_or_path}.yaml").read_text(encoding="utf-8")
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise MappingError(name_or_path, [f"no such mapping file, and not a shipped mapping "
                                              f"({', '.join(shipped())})"])
        source, raw = str(path), path.read_text(encoding="utf-8")
    raw = raw.replace("{application_prefix}", application_prefix)
    raw = raw.replace("{tenant}", "NULL" if tenant is None else str(int(tenant)))
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise MappingError(source, [f"not YAML: {error}"]) from None
    return parse(document, source)


def _text(problems: list[str], document: dict, key: str, required: bool = False) -> str | None:
    value = document.get(key)
    if value is None:
        if required:
            problems.append(f"{key}: missing")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{key}: expected SQL text")
        return None
    return value.strip().rstrip(";")


def parse(document: Any, source: str = "mapping") -> Mapping:
    """Check a mapping document whole; MappingError listing every problem with its place."""
    if not isinstance(document, dict):
        raise MappingError(source, ["a mapping is a YAML mapping of name, views, capture ..."])
    problems: list[str] = []
    known = ("name", "source", "views", "statuses", "set_status", "read_only", "capture", "continues", "absent")
    problems += [f"{key}: unknown field (expected one of: {', '.join(known)})" for key in document if key not in known]
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: missing")
    views = document.get("views") if isinstance(document.get("views"), dict) else {}
    if not isinstance(document.get("views"), dict):
        problems.append("views: expected a SELECT for each of " + ", ".join(COLUMNS))
    for table in COLUMNS:
        _text(problems, views, table, required=True) if table in views else problems.append(f"views.{table}: missing")
    problems += [f"views.{key}: not a reference table (expected one of: {', '.join(COLUMNS)})"
                 for key in views if key not in COLUMNS]
    statuses = document.get("statuses") or {}
    if not isinstance(statuses, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in
                                                 statuses.items()):
        problems.append("statuses: expected apptflow's status code: the application's value")
        statuses = {}
    read_only = document.get("read_only")
    if read_only is not None and (not isinstance(read_only, str) or not read_only.strip()):
        problems.append("read_only: expected the reason set_status cannot write (text)")
    set_status = _text(problems, document, "set_status")
    if read_only is None and set_status is None:
        problems.append("set_status: missing (or say why the mapping is read_only)")
    if set_status and not (":status" in set_status and ":appointment_id" in set_status):
        problems.append("set_status: must use :status and :appointment_id")
    if set_status and not statuses:
        problems.append("statuses: set_status needs the statuses it may write")
    by_value: dict[str, list[str]] = {}
    for code, value in statuses.items():
        by_value.setdefault(value, []).append(code)
    problems += [f"statuses: {' and '.join(codes)} are all written as {value!r}, which can read back as one "
                 "code only" for value, codes in by_value.items() if len(codes) > 1]
    appointments_view = views.get("appointments")
    if statuses and isinstance(appointments_view, str) and f"{STATUS_FUNCTION}(" not in appointments_view:
        problems.append(f"views.appointments: give the status as {STATUS_FUNCTION}(<the application's status>) "
                        "AS status, so that it reads through the same statuses set_status writes")
    captures = []
    entries = document.get("capture")
    if not isinstance(entries, list) or not entries:
        problems.append("capture: expected a list of the application's tables whose changes matter")
        entries = []
    for index, entry in enumerate(entries):
        place = f"capture[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("table"), str):
            problems.append(f"{place}: expected table: <name> and appointments and/or customers: [expressions]")
            continue
        targets = {}
        at_commit = entry.get("at_commit")
        if at_commit is not None and (not isinstance(at_commit, str) or not at_commit.strip()):
            problems.append(f"{place}.at_commit: expected an SQL condition over OLD and NEW")
        for key, value in entry.items():
            if key in ("table", "at_commit"):
                continue
            if key not in TARGETS:
                problems.append(f"{place}.{key}: expected appointments, customers or at_commit")
            elif not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                problems.append(f"{place}.{key}: expected a list of SQL expressions over NEW and OLD")
            else:
                targets[key] = tuple(value)
        if not targets:
            problems.append(f"{place}: gives neither appointments nor customers")
        captures.append(Capture(table=entry["table"], targets=targets,
                                at_commit=at_commit.strip() if isinstance(at_commit, str) else None))
    continues = _text(problems, document, "continues")
    if continues and ":appointment_id" not in continues:
        problems.append("continues: must use :appointment_id")
    absent = document.get("absent") or {}
    if not isinstance(absent, dict):
        problems.append("absent: expected table.column: why")
        absent = {}
    for column, why in absent.items():
        table, _, column_name = str(column).partition(".")
        if column_name not in COLUMNS.get(table, ()):
            problems.append(f"absent.{column}: not a reference column (table.column)")
        elif not isinstance(why, str) or not why.strip():
            problems.append(f"absent.{column}: say why the application has no such data")
    if problems:
        raise MappingError(source, problems)
    return Mapping(name=name.strip(), source=str(document.get("source") or ""),
                   views={table: _text([], views, table) for table in COLUMNS}, statuses=dict(statuses),
                   set_status=set_status, read_only=read_only, capture=tuple(captures), continues=continues,
                   absent={str(k): str(v) for k, v in absent.items()})


