"""Workflow documents: YAML in and out, and the split into table rows and back.

A document is the plain-data form of a workflow (the YAML file's content).
:func:`to_document` gives the canonical document of a parsed workflow, so
``export`` → ``add`` → ``export`` prints the same text.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import yaml

from db.records import KnownIds, WorkflowRow
from engine.errors import InvalidWorkflow, Problem
from engine.validation import parse_workflow
from engine.actions import action_type
from engine.triggers import trigger_type
from engine.workflow import FILTER_NAMES, Workflow


def load_yaml(text: str) -> Any:
    """Parse one YAML document; a syntax error becomes an InvalidWorkflow with line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        place = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise InvalidWorkflow([Problem(place=place, message=f"invalid YAML: {problem}")]) from None


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line text, so exported bodies read like the files people write."""


def _represent_text(dumper: yaml.SafeDumper, text: str):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def _represent_list(dumper: yaml.SafeDumper, items: list):
    flat = all(isinstance(i, (str, int, float)) and "\n" not in str(i) for i in items)
    short = sum(len(str(i)) + 2 for i in items) < 60
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flat and short)


_Dumper.add_representer(str, _represent_text)
_Dumper.add_representer(list, _represent_list)


def dump_yaml(document: dict) -> str:
    """YAML that :func:`load_yaml` reads back to *document*."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def to_document(workflow: Workflow) -> dict[str, Any]:
    """The canonical document of *workflow*: fixed key order, durations spelt shortest."""
    trigger = {"type": workflow.trigger.type, **trigger_type(workflow.trigger.type).export(workflow.trigger)}
    filters = {
        name: list(getattr(workflow.filters, name))
        for name in FILTER_NAMES
        if getattr(workflow.filters, name) is not None
    }
    document: dict[str, Any] = {"name": workflow.name, "enabled": workflow.enabled, "trigger": trigger}
    if filters:
        document["filters"] = filters
    document["actions"] = [
        {"type": action.type,
         **{k: action.fields[k] for k in action_type(action.type).field_specs() if k in action.fields}}
        for action in workflow.actions
    ]
    return document


def split_document(document: dict[str, Any]) -> dict[str, Any]:
    """The column values of the ``workflows`` row and its ``workflow_actions`` rows."""
    trigger = dict(document["trigger"])
    return {
        "name": document["name"],
        "enabled": document["enabled"],
        "trigger_type": trigger.pop("type"),
        "trigger": trigger,
        "filters": document.get("filters", {}),
        "actions": [
            {"type": action["type"], "config": {k: v for k, v in action.items() if k != "type"}}
            for action in document["actions"]
        ],
    }


def _json(value: str, place: str, problems: list[Problem]) -> Any:
    try:
        return json.loads(value)
    except ValueError as error:
        problems.append(Problem(place=place, message=f"not valid JSON ({error.args[0]})"))
        return None


def join_rows(row: WorkflowRow, problems: list[Problem]) -> dict[str, Any]:
    """Rebuild a document from a ``workflows`` row and its action rows.

    A JSON column holding malformed JSON, or not an object, adds to *problems*
    and reads as empty, so the rest of the row is still checked.
    """
    trigger = _object(row.trigger, "trigger", problems)
    document: dict[str, Any] = {
        "name": row.name,
        "enabled": bool(row.enabled),
        "trigger": {"type": row.trigger_type, **trigger},
    }
    filters = _object(row.filters, "filters", problems)
    if filters:
        document["filters"] = filters
    document["actions"] = [
        {"type": action.type, **_object(action.config, f"actions[{index}]", problems)}
        for index, action in enumerate(row.actions)
    ]
    return document


def _object(text: str, place: str, problems: list[Problem]) -> dict[str, Any]:
    value = _json(text, place, problems)
    if value is not None and not isinstance(value, dict):
        problems.append(Problem(place=place, message=f"expected a JSON object, got {type(value).__name__}"))
    return value if isinstance(value, dict) else {}


def workflow_from_row(row: WorkflowRow, *, known: KnownIds | None = None) -> Workflow:
    """The validated workflow stored in *row*; InvalidWorkflow with every problem otherwise."""
    problems: list[Problem] = []
    document = join_rows(row, problems)
    try:
        workflow = parse_workflow(document, known=known)
    except InvalidWorkflow as invalid:
        raise InvalidWorkflow(problems + list(invalid.problems)) from None
    if problems:
        raise InvalidWorkflow(problems)
    actions = tuple(replace(a, id=r.id) for a, r in zip(workflow.actions, row.actions, strict=True))
    return replace(workflow, id=row.id, actions=actions)
