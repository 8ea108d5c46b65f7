"""What a workflow document must satisfy to be admitted (``workflow add``, ``replace``, ``apply``,
``validate``, ``import``): valid, sendable with this configuration, and named uniquely.

Pure checks: what they need from the database and from the channels comes in as
an :class:`Admission`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from db.records import KnownIds
from engine.actions import action_type
from engine.document import load_yaml
from engine.errors import InvalidWorkflow, Problem
from engine.validation import parse_workflow
from engine.workflow import Workflow


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """What admitting a workflow depends on besides its document."""

    known: KnownIds
    workflow_named: Callable[[str], int | None]  # the id of the stored workflow of that name, if any
    refusal: Callable[[str], str | None]  # why a URL could never be sent to, whatever it resolves to; else None
    # whether a configuration switch is on: (section, key) as an action type's url_guards name it
    allowed: Callable[[tuple[str, str]], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """One document checked: its workflow (None if it could not be read) and every problem found."""

    source: str
    workflow: Workflow | None
    problems: list[Problem]


def private_targets(workflow: Workflow, admission: Admission) -> list[Problem]:
    """URLs of the fields each action type guards (a webhook's url, attachments) whose host is a literal
    private address, when the configuration refuses those: they could never be sent, so they are refused
    now (names are checked at send time)."""
    problems = []
    for n, action in enumerate(workflow.actions):
        for guard in action_type(action.type).url_guards:
            if admission.allowed(guard.setting):
                continue
            for place, url in _urls(action.fields.get(guard.field), guard.field):
                refusal = admission.refusal(url)
                if refusal:
                    key = f"[{guard.setting[0]}] {guard.setting[1]}"
                    problems.append(Problem(place=f"actions[{n}].{place}", message=f"{refusal}: {guard.what} to "
                                            f"private addresses are refused ({key} = false)"))
    return problems


def _urls(value: Any, field: str) -> list[tuple[str, str]]:
    """A guarded field's URLs with their places: the field itself, or its http(s) entries."""
    if isinstance(value, str):
        return [(field, value)]
    return [(f"{field}[{i}]", str(item)) for i, item in enumerate(value or ())
            if str(item).lstrip().lower().startswith(("http://", "https://"))]


def check_document(document: Any, admission: Admission, pending_names: set[str], *,
                   replacing: int | None = None, by_name: bool = False) -> tuple[Workflow | None, list[Problem]]:
    """Parse and check one workflow document; return (workflow, problems).

    A workflow of the same name is a problem, unless it is the one being replaced
    (*replacing*) or the document is applied by name (*by_name*); so is a name met
    earlier in the same command (*pending_names*, to which this one is added).
    """
    try:
        parsed = parse_workflow(document, known=admission.known)
    except InvalidWorkflow as error:
        return None, list(error.problems)
    problems = private_targets(parsed, admission)
    existing = admission.workflow_named(parsed.name)
    if by_name or existing == replacing:
        existing = None
    if existing is not None or parsed.name in pending_names:
        where = f" (workflow {existing})" if existing is not None else " (earlier in this command)"
        problems.append(Problem(place="name", message=f"a workflow named {parsed.name!r} already exists{where}"))
    pending_names.add(parsed.name)
    return parsed, problems


def check_text(text: str, admission: Admission, pending_names: set[str], *,
               replacing: int | None = None, by_name: bool = False) -> tuple[Workflow | None, list[Problem]]:
    """As :func:`check_document`, for a document still in YAML."""
    try:
        document = load_yaml(text)
    except InvalidWorkflow as error:
        return None, list(error.problems)
    return check_document(document, admission, pending_names, replacing=replacing, by_name=by_name)


def check_all(texts: list[tuple[str, str]], admission: Admission, *, by_name: bool = False) -> list[Checked]:
    """Every (source, YAML text) checked, names unique among them too; a command admits all or none."""
    names: set[str] = set()
    checked = []
    for source, text in texts:
        workflow, problems = check_text(text, admission, names, by_name=by_name)
        checked.append(Checked(source=source, workflow=workflow, problems=problems))
    return checked
