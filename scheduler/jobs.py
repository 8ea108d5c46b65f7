"""The function every time-offset job calls, by the stable textual reference ``scheduler.jobs:fire``.

Jobs carry only primitive arguments (workflow id, appointment id, planned time
as ISO 8601), so they survive restarts and upgrades; the running daemon
registers the planner that does the work.
"""

from __future__ import annotations

FIRE = "scheduler.jobs:fire"
FIRE_RECURRING = "scheduler.jobs:fire_recurring"

_planner = None


def register(planner) -> None:
    """Make *planner* the one that handles firings in this process (None to unregister)."""
    global _planner
    _planner = planner


def unregister(planner) -> None:
    """Unregister *planner*, if it is the registered one (another daemon in this process may lead)."""
    global _planner
    if _planner is planner:
        _planner = None


def fire(workflow_id: int, appointment_id: int, planned_at: str) -> None:
    """A time-offset firing is due: hand it to the running daemon's planner."""
    if _planner is None:
        raise RuntimeError("no apptflow daemon is running in this process to handle the firing")
    _planner.fire(workflow_id, appointment_id, planned_at)


def fire_recurring(prefix: str, workflow_id: int, target: str, target_id: int, planned_at: str) -> None:
    """A recurring firing (schedule, birthday, recall) is due: the running daemon writes it."""
    if _planner is None:
        raise RuntimeError("no apptflow daemon is running in this process to handle the firing")
    _planner.recurring.fire(prefix, workflow_id, target, target_id, planned_at)
