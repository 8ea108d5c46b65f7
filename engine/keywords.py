"""The template keywords each trigger offers, named after Booknetic's where the data exists."""

from __future__ import annotations

_TIMES = (
    "appointment_date", "appointment_start_date", "appointment_end_date",
    "appointment_date_time", "appointment_start_date_time", "appointment_end_date_time",
    "appointment_start_time", "appointment_end_time",
)

APPOINTMENT = frozenset({
    "appointment_id", *_TIMES, *(f"{name}_client" for name in _TIMES),
    "appointment_duration", "appointment_status", "appointment_status_code", "appointment_service_price",
    "appointment_created_date", "appointment_created_time", "appointment_started_by",
    "service_name", "service_price", "service_duration",
    "staff_name", "staff_email", "staff_phone",
    "location_name", "location_address", "location_timezone",
    "appointment", "service", "staff", "location",
})

CUSTOMER = frozenset({
    "customer_full_name", "customer_first_name", "customer_last_name",
    "customer_email", "customer_phone", "customer_locale", "customer",
})

COMPANY = frozenset({"company_name", "company_phone", "company_website", "company_address", "company_country"})

STATUS_CHANGE = frozenset({"old_status", "new_status"})

TIME_OFFSET = frozenset({"fire_time", "offset"})

# appointment_rescheduled: the appointment as it was before the change.
RESCHEDULE = frozenset({
    "old_appointment_date", "old_appointment_date_time", "old_appointment_start_time", "old_appointment_end_time",
    "old_staff_name", "old_location_name", "old_service_name",
})


def available(trigger_type: str) -> frozenset[str]:
    """Every keyword a template of a workflow with this trigger may use."""
    names = CUSTOMER | COMPANY
    if trigger_type != "customer_created":
        names |= APPOINTMENT
    if trigger_type == "appointment_status_changed":
        names |= STATUS_CHANGE
    if trigger_type == "appointment_rescheduled":
        names |= RESCHEDULE
    if trigger_type in ("appointment_starts", "appointment_ends"):
        names |= TIME_OFFSET
    return names


EVERY = CUSTOMER | COMPANY | APPOINTMENT | STATUS_CHANGE | TIME_OFFSET | RESCHEDULE
