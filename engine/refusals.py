"""What the sandbox refuses wherever it meets it, found in a template's syntax tree before any booking exists.

So a workflow is refused when it is added, rather than each of its deliveries at send time:

- reading what the sandbox never gives (``''.__class__``, ``customer_first_name._x``,
  ``[].append``) from a value whose kind is known without a booking: a literal, or a
  keyword or global that the template does not redefine;
- an operation on constants past a bound (``range(10**9)``, ``'a' * 10**9``,
  ``2 ** (10**9)``; Jinja groups ``**`` from the left, so ``2 ** 10**9`` is a fine 2**90).

The verdicts are the sandbox's own, not a copy of its rules: the access is tried on a
value like the keyword's, and constants are computed with the sandbox's operators, each
checked against its bound before it runs, so finding ``2 ** (10**9)`` costs what refusing
it at render time does. Values that depend on the booking are never guessed at.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jinja2 import Undefined, nodes

from db import records
from engine import keywords
from engine.errors import RenderError
from engine.sandbox import Sandbox, fits

# The keywords that are records, each a mapping of its columns (engine.context); every other keyword
# is text or a number.
_RECORDS = {"appointment": records.Appointment, "customer": records.Customer, "service": records.Service,
            "staff": records.Staff, "location": records.Location}

_UNKNOWN = object()  # a value that depends on the booking, or on what the template did before


def refused(tree: nodes.Template, env: Sandbox) -> list[str]:
    """Every part of *tree* that *env* refuses wherever it meets it, with its line."""
    reader = _Reader(env, _known_names(env, _assigned(tree)))
    reader.visit(tree)
    return reader.problems


def _known_names(env: Sandbox, assigned: set[str]) -> dict[str, Any]:
    """A value like each name's, as rendering sees it: keywords before globals."""
    known = dict(env.globals)
    known.update(dict.fromkeys(keywords.EVERY, ""))
    known.update({name: dict.fromkeys(field.name for field in dataclasses.fields(record))
                  for name, record in _RECORDS.items()})
    return {name: value for name, value in known.items() if name not in assigned}


def _assigned(tree: nodes.Template) -> set[str]:
    """The names a template gives values of its own (set, for, with, macro, import)."""
    names = {name.name for name in tree.find_all(nodes.Name) if name.ctx in ("store", "param")}
    names.update(macro.name for macro in tree.find_all(nodes.Macro))
    names.update(node.target for node in tree.find_all(nodes.Import))
    for node in tree.find_all(nodes.FromImport):
        names.update(name[1] if isinstance(name, tuple) else name for name in node.names)
    return names


def _attribute(node: nodes.Node) -> str | None:
    """The name read by ``x.name``, ``x['name']`` or ``x|attr('name')``, when it is written out."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem):
        argument = node.arg
    elif isinstance(node, nodes.Filter) and node.name == "attr" and node.node is not None and len(node.args) == 1:
        argument = node.args[0]
    else:
        return None
    return argument.value if isinstance(argument, nodes.Const) and isinstance(argument.value, str) else None


class _Reader:
    """Reads a template's expressions as far as they are known without a booking."""

    def __init__(self, env: Sandbox, known: dict[str, Any]):
        self.env, self.known = env, known
        self.problems: list[str] = []

    def visit(self, node: nodes.Node) -> Any:
        """Read *node* and what it holds, each once: its value when made of constants alone, else _UNKNOWN."""
        used = self._operands(node)
        # Only the values this node is computed from are kept: a template's constants are not all held at once.
        values = {}
        for child in node.iter_child_nodes():
            value = self.visit(child)
            if any(child is operand for operand in used):
                values[id(child)] = value
        operands = [values.get(id(operand), _UNKNOWN) for operand in used]
        name = _attribute(node)
        if name is not None:
            self._access(node, name, self.known.get(node.node.name, _UNKNOWN)
                         if isinstance(node.node, nodes.Name) else operands[0])
        if any(operand is _UNKNOWN for operand in operands):
            return _UNKNOWN
        return self._compute(node, operands)

    def _operands(self, node: nodes.Node) -> list[nodes.Node]:
        """The children *node* is computed from, or read from, here."""
        if isinstance(node, (nodes.List, nodes.Tuple)):
            return list(node.items)
        if isinstance(node, nodes.BinExpr) and node.operator in self.env.binop_table:
            return [node.left, node.right]
        if isinstance(node, nodes.UnaryExpr) and node.operator in self.env.unop_table:
            return [node.node]
        if isinstance(node, nodes.Call) and self._is_range(node):
            return list(node.args)
        if _attribute(node) is not None:
            return [node.node]
        return []

    def _compute(self, node: nodes.Node, operands: list) -> Any:
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.List):
            return operands
        if isinstance(node, nodes.Tuple):
            return tuple(operands)
        if isinstance(node, nodes.BinExpr) and node.operator in self.env.binop_table:
            return self._run(node, self._operate, node.operator, *operands)
        if isinstance(node, nodes.UnaryExpr) and node.operator in self.env.unop_table:
            return self._run(node, self.env.unop_table[node.operator], *operands)
        if isinstance(node, nodes.Call) and self._is_range(node):
            return self._run(node, self._range, *operands)
        return _UNKNOWN

    def _access(self, node: nodes.Node, name: str, owner: Any) -> None:
        if owner is _UNKNOWN or self.env.is_safe_attribute(owner, name, getattr(owner, name, None)):
            return
        # Tried as rendering would: a mapping's key of that name is the value, not the attribute.
        if isinstance(self._read(node, owner, name), Undefined):
            self.problems.append(f"not allowed in a template (line {node.lineno}): "
                                 f"access to attribute {name!r} is unsafe")

    def _read(self, node: nodes.Node, owner: Any, name: str) -> Any:
        if isinstance(node, nodes.Getattr):
            return self.env.getattr(owner, name)
        if isinstance(node, nodes.Getitem):
            return self.env.getitem(owner, name)
        return self.env.filters["attr"](self.env, owner, name)

    def _run(self, node: nodes.Node, operation, *arguments: Any) -> Any:
        try:
            return operation(*arguments)
        except RenderError as error:
            self.problems.append(f"always fails (line {node.lineno}): {error}")
        except Exception:  # noqa: BLE001 - a mistake of another kind: rendering says which
            pass
        return _UNKNOWN

    def _operate(self, operator: str, left: Any, right: Any) -> Any:
        if operator in self.env.intercepted_binops:
            return self.env.call_binop(None, operator, left, right)  # checks, then computes (no context read)
        return self.env.binop_table[operator](left, right)

    def _is_range(self, node: nodes.Call) -> bool:
        callee = node.node
        return (isinstance(callee, nodes.Name) and self.known.get(callee.name) is self.env.globals["range"]
                and not (node.kwargs or node.dyn_args or node.dyn_kwargs))

    def _range(self, *arguments: Any) -> range:
        for argument in arguments:
            fits(argument, "an argument")  # as Sandbox.call checks every argument
        try:
            return self.env.globals["range"](*arguments)
        except OverflowError as error:  # Jinja's MAX_RANGE
            raise RenderError(str(error)) from None
