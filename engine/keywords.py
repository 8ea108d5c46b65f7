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
    "appointment_created_date", "appointment_created_time", "appointment_created_date_client",
    "appointment_created_time_client", "appointment_started_by", "appointment_notes",
    "appointment_sum_price", "appointment_paid_price", "appointment_discount_price", "appointment_payment_method",
    "appointment_total_attendees", "appointment_brought_people", "add_to_google_calendar_link",
    "appointment_buffer_before", "appointment_buffer_after",
    "service_name", "service_price", "service_duration", "service_category_name", "service_notes",
    "service_color", "service_image_url",
    "staff_name", "staff_email", "staff_phone", "staff_about", "staff_profile_image_url",
    "location_name", "location_address", "location_timezone", "location_phone_number", "location_notes",
    "location_image_url", "location_google_maps_url",
    "appointment", "service", "staff", "location",
})

CUSTOMER = frozenset({
    "customer_full_name", "customer_first_name", "customer_last_name",
    "customer_email", "customer_phone", "customer_locale", "customer_birthday", "customer_notes",
    "customer_profile_image_url", "customer",
})

COMPANY = frozenset({"company_name", "company_phone", "company_website", "company_address", "company_country",
                     "company_image_url"})

STATUS_CHANGE = frozenset({"old_status", "new_status"})

TIME_OFFSET = frozenset({"fire_time", "offset"})

# customer_replied: what the customer wrote, and by which channel (sms, whatsapp, telegram).
REPLY = frozenset({"reply_text", "reply_channel"})

# message_undelivered: the message that did not arrive.
UNDELIVERED = frozenset({"failed_channel", "failure_code", "failure_reason"})

# appointment_rescheduled: the appointment as it was before the change.
RESCHEDULE = frozenset({
    "old_appointment_date", "old_appointment_date_time", "old_appointment_start_time", "old_appointment_end_time",
    "old_staff_name", "old_location_name", "old_service_name",
})


# A schedule's agenda: the staff member's or the location's keywords, and the list of appointments.
STAFF = frozenset({"staff_name", "staff_email", "staff_phone", "staff_about", "staff_profile_image_url", "staff"})
LOCATION = frozenset({"location_name", "location_address", "location_timezone", "location_phone_number",
                      "location_notes", "location_image_url", "location_google_maps_url", "location"})
AGENDA = frozenset({"appointments", "fire_time", "window_start", "window_end"})

# customer_birthday and customer_inactive: when it fires; the end of the last visit.
CUSTOMER_DATE = frozenset({"fire_time"})
RECALL = frozenset({"fire_time", "last_visit_date"})


def available(trigger_name: str) -> frozenset[str]:
    """Every keyword a template of a workflow with this trigger may use."""
    from engine.triggers import AGENDAS, trigger_type  # the triggers name their keywords from this module

    kind = trigger_type(trigger_name)
    names = COMPANY | kind.keywords
    if kind.subject != AGENDAS:  # an agenda has no one customer
        names |= CUSTOMER
    return names | APPOINTMENT if kind.has_appointment else names


EVERY = (CUSTOMER | COMPANY | APPOINTMENT | STATUS_CHANGE | TIME_OFFSET | RESCHEDULE | AGENDA | RECALL | REPLY
         | UNDELIVERED)


# Booknetic's keywords that apptflow does not offer, and why (docs/workflows.md has the whole list).
_NO_EXTRAS = "service extras have no table in the reference schema; keep them in a custom field " \
             "({{ appointment.custom.extras }})"
_NO_RECURRENCE = "the reference schema has no recurrence: each occurrence is an appointment with its own messages"
_NO_PAGES = "it points to a page of Booknetic's own site, and apptflow serves no pages; write the URL in the text"


def _add_on(what: str, add_on: str, field: str) -> str:
    return (f"{what} are kept by Booknetic's {add_on} add-on, and the reference schema has no place for them; "
            f"write what a message needs into a custom field ({{{{ appointment.custom.{field} }}}})")


_ZOOM = _add_on("Zoom meetings", "Zoom", "zoom_meeting_url")
_PACKAGES = "packages and their bookings belong to Booknetic's Packages add-on; apptflow's triggers are " \
            "appointments and customers, and an appointment booked from a package is one like any other"

BOOKNETIC_ABSENT = {
    "appointment_extras_price": _NO_EXTRAS,
    "appointment_extras_list": _NO_EXTRAS,
    "appointments_total_price": _NO_RECURRENCE,
    "recurring_appointments_date": _NO_RECURRENCE,
    "recurring_appointments_date_time": _NO_RECURRENCE,
    "recurring_appointments_date_client": _NO_RECURRENCE,
    "recurring_appointments_date_time_client": _NO_RECURRENCE,
    "total_appointments_in_group": "a group booking is one appointment: use appointment_total_attendees",
    "customer_password": "apptflow never sees a customer's password, and would not send one",
    "url_to_complete_customer_signup": _NO_PAGES,
    "url_to_reset_password": _NO_PAGES,
    "sign_in_page": _NO_PAGES,
    "sign_up_page": _NO_PAGES,
    # the add-ons' keywords, as each add-on registers them
    "zoom_meeting_url": _ZOOM,
    "zoom_meeting_host_url": _ZOOM,
    "zoom_meeting_password": _ZOOM,
    "coupon_code": _add_on("coupons", "Coupons", "coupon_code"),
    "giftcard_code": _add_on("gift cards", "Gift cards", "giftcard_code"),
    "customer_panel_url": _NO_PAGES,
    **dict.fromkeys((
        "package_booking_id", "package_booking_note", "package_booking_price", "package_booking_expires_on",
        "package_booking_payment_method", "package_id", "package_name", "package_image_url", "package_color",
        "package_note", "package_services"), _PACKAGES),
}
_ABSENT_FAMILIES = {
    "link_to_change_appointment_status_to_": "the link is served by Booknetic's site, and apptflow has no web "
                                             "endpoint to receive it",
    "appointment_payment_link_": "a payment session is created by Booknetic's payment gateways",
    # appointment_custom_field_<id>, with _url and _path for a file
    "appointment_custom_field_": "the answers of a Custom Forms form are the appointment's custom fields here, "
                                 "read by name rather than by the input's id: {{ appointment.custom.<field> }}",
}


def booknetic_absence(name: str) -> str | None:
    """Why apptflow does not offer Booknetic's keyword *name*, or None if it is not one of those."""
    if name in BOOKNETIC_ABSENT:
        return BOOKNETIC_ABSENT[name]
    return next((why for prefix, why in _ABSENT_FAMILIES.items() if name.startswith(prefix)), None)


# The booking column each keyword reads, for the keywords a mapping may leave without data (see
# db/mapping.py: a mapping names the reference columns its application has no data for).
COLUMNS = {
    "appointment_notes": "appointments.notes", "appointment_sum_price": "appointments.total_price",
    "appointment_paid_price": "appointments.paid_price", "appointment_discount_price": "appointments.discount_price",
    "appointment_payment_method": "appointments.payment_method",
    "appointment_buffer_before": "appointments.buffer_before_minutes",
    "appointment_buffer_after": "appointments.buffer_after_minutes",
    "customer_email": "customers.email", "customer_phone": "customers.phone", "customer_locale": "customers.locale",
    "customer_birthday": "customers.birthday", "customer_notes": "customers.notes",
    "customer_profile_image_url": "customers.image_url",
    "service_price": "services.price", "appointment_service_price": "services.price",
    "service_duration": "services.duration_minutes", "service_category_name": "services.category",
    "service_notes": "services.notes", "service_color": "services.color", "service_image_url": "services.image_url",
    "staff_email": "staff.email", "staff_phone": "staff.phone", "staff_about": "staff.about",
    "staff_profile_image_url": "staff.image_url",
    "location_address": "locations.address", "location_phone_number": "locations.phone",
    "location_notes": "locations.notes", "location_image_url": "locations.image_url",
}


def unfillable(absent: dict[str, str]) -> dict[str, str]:
    """The keywords that read a column the installed mapping has no data for (*absent*: column → why)."""
    return {keyword: f"{column}: {absent[column]}" for keyword, column in COLUMNS.items() if column in absent}
