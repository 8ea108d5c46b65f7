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
    allow_private_webhooks: bool  # [webhook] allow_private_addresses
    allow_private_attachments: bool  # [daemon] attachments_allow_private_addresses


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """One document checked: its workflow (None if it could not be read) and every problem found."""

    source: str
    workflow: Workflow | None
    problems: list[Problem]


def private_targets(workflow: Workflow, admission: Admission) -> list[Problem]:
    """Webhook and attachment URLs whose host is a literal private address, when the configuration
    refuses those: they could never be sent, so they are refused now (names are checked at send time)."""
    problems = []
    for n, action in enumerate(workflow.actions):
        urls = []
        if action.type == "webhook" and not admission.allow_private_webhooks:
            urls.append(("url", action.fields.get("url", ""), "webhooks", "[webhook] allow_private_addresses"))
        if not admission.allow_private_attachments:
            urls += [(f"attachments[{i}]", item, "attachments", "[daemon] attachments_allow_private_addresses")
                     for i, item in enumerate(action.fields.get("attachments", ()))
                     if str(item).lstrip().lower().startswith(("http://", "https://"))]
        for place, url, what, key in urls:
            refusal = admission.refusal(str(url))
            if refusal:
                problems.append(Problem(place=f"actions[{n}].{place}",
                                        message=f"{refusal}: {what} to private addresses are refused ({key} = false)"))
    return problems


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
