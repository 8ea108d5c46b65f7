"""Templates: every keyword for a concrete booking, dates in the right zone and language, a sandbox that holds.

Pure logic: the records are built by hand, and time is data (no clock).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from db.records import Appointment, Booking, Customer, Location, Service, Staff
from engine import keywords
from engine.context import build_context, locale_of, zone
from engine.errors import RenderError
from engine.templates import check, from_booknetic, make_environment, render

UTC = dt.timezone.utc
COMPANY = {"name": "Salon Opéra", "phone": "+33 1 23 45 67 89", "website": "https://salon.example",
           "address": "1 rue Scribe, Paris", "country": "FR", "image_url": "https://salon.example/logo.png"}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def booking(*, starts="2026-12-01T10:00:00+00:00", minutes=90, locale="en", customer_zone="America/New_York",
            location_zone="Europe/Paris", price="45.5", **custom) -> Booking:
    """Jane's 90-minute haircut with Bob at the Paris salon, on 1 December 2026 at 10:00 UTC."""
    start = at(starts)
    return Booking(
        appointment=Appointment(
            id=9, customer_id=7, service_id=3, staff_id=2, location_id=1,
            starts_at=start, ends_at=start + dt.timedelta(minutes=minutes),
            status="approved", started_by="frontend", locale="de",
            custom={"x": "from the appointment", "parent_phone": "+33612345678", **custom},
            created_at=at("2026-11-01T08:00:00+00:00"), updated_at=at("2026-11-02T08:00:00+00:00"),
            notes="Short at the back", total_price="40.5", paid_price="10", discount_price="5",
            payment_method="local", attendees=3, buffer_before_minutes=15, buffer_after_minutes=None,
        ),
        customer=Customer(
            id=7, first_name="Jane", last_name="Doe", email="jane@example.com", phone="+15551234567",
            locale=locale, timezone=customer_zone, telegram_chat_id="4242",
            custom={"y": "from the customer", "allergies": None},
            created_at=at("2026-01-01T00:00:00+00:00"), birthday=dt.date(1990, 5, 17), notes="Prefers mornings",
            image_url="https://salon.example/jane.jpg",
        ),
        service=Service(id=3, name="Haircut", price=price, duration_minutes=90, category="Hair", notes="Wash included",
                        color="#53d56c", image_url="https://salon.example/haircut.jpg"),
        staff=Staff(id=2, name="Bob Martin", email="bob@example.com", phone="+33698765432", telegram_chat_id=None,
                    about="Ten years at the Opéra", image_url="https://salon.example/bob.jpg"),
        location=Location(id=1, name="Opéra", address="1 rue Scribe, Paris", timezone=location_zone,
                          phone="+33 1 40 00 00 00", notes="Second floor", image_url="https://salon.example/opera.jpg",
                          latitude=48.8708, longitude=2.332401),
    )


def context_for(the_booking: Booking | None = None, **extra):
    return build_context(the_booking or booking(), company=COMPANY, extra=extra)


def rendered(source: str, the_booking: Booking | None = None, **extra) -> str:
    return render(source, context_for(the_booking, **extra))


# --- every keyword -------------------------------------------------------------------------------

EXPECTED = {
    "appointment_id": "9",
    "appointment_date": "Dec 1, 2026",
    "appointment_start_date": "Dec 1, 2026",
    "appointment_end_date": "Dec 1, 2026",
    "appointment_date_time": "Dec 1, 2026, 11:00 AM",
    "appointment_start_date_time": "Dec 1, 2026, 11:00 AM",
    "appointment_end_date_time": "Dec 1, 2026, 12:30 PM",
    "appointment_start_time": "11:00 AM",
    "appointment_end_time": "12:30 PM",
    "appointment_date_client": "Dec 1, 2026",
    "appointment_start_date_client": "Dec 1, 2026",
    "appointment_end_date_client": "Dec 1, 2026",
    "appointment_date_time_client": "Dec 1, 2026, 5:00 AM",
    "appointment_start_date_time_client": "Dec 1, 2026, 5:00 AM",
    "appointment_end_date_time_client": "Dec 1, 2026, 6:30 AM",
    "appointment_start_time_client": "5:00 AM",
    "appointment_end_time_client": "6:30 AM",
    "appointment_duration": "1h 30m",
    "appointment_status": "Approved",
    "appointment_status_code": "approved",
    "appointment_service_price": "45.50",
    "appointment_created_date": "Nov 1, 2026",
    "appointment_created_time": "9:00 AM",
    # created at 08:00 UTC: 3:00 AM for the customer in New York
    "appointment_created_date_client": "Nov 1, 2026",
    "appointment_created_time_client": "3:00 AM",
    "appointment_started_by": "frontend",
    "appointment_notes": "Short at the back",
    "appointment_sum_price": "40.50",
    "appointment_paid_price": "10.00",
    "appointment_discount_price": "5.00",
    "appointment_payment_method": "local",
    "appointment_total_attendees": "3",
    "appointment_brought_people": "2",
    "appointment_buffer_before": "15m",
    "appointment_buffer_after": "",
    "add_to_google_calendar_link": "https://www.google.com/calendar/render?action=TEMPLATE&text=Haircut"
                                   "&dates=20261201T100000Z/20261201T113000Z&location=1%20rue%20Scribe%2C%20Paris",
    "service_name": "Haircut",
    "service_price": "45.50",
    "service_duration": "1h 30m",
    "service_category_name": "Hair",
    "service_notes": "Wash included",
    "service_color": "#53d56c",
    "service_image_url": "https://salon.example/haircut.jpg",
    "staff_name": "Bob Martin",
    "staff_email": "bob@example.com",
    "staff_phone": "+33698765432",
    "staff_about": "Ten years at the Opéra",
    "staff_profile_image_url": "https://salon.example/bob.jpg",
    "location_name": "Opéra",
    "location_address": "1 rue Scribe, Paris",
    "location_timezone": "Europe/Paris",
    "location_phone_number": "+33 1 40 00 00 00",
    "location_notes": "Second floor",
    "location_image_url": "https://salon.example/opera.jpg",
    "location_google_maps_url": "https://maps.google.com/?q=48.8708,2.332401",
    "customer_full_name": "Jane Doe",
    "customer_first_name": "Jane",
    "customer_last_name": "Doe",
    "customer_email": "jane@example.com",
    "customer_phone": "+15551234567",
    "customer_locale": "en",
    "customer_birthday": "May 17, 1990",
    "customer_notes": "Prefers mornings",
    "customer_profile_image_url": "https://salon.example/jane.jpg",
    "company_name": "Salon Opéra",
    "company_phone": "+33 1 23 45 67 89",
    "company_website": "https://salon.example",
    "company_address": "1 rue Scribe, Paris",
    "company_country": "FR",
    "company_image_url": "https://salon.example/logo.png",
    "old_status": "pending",
    "new_status": "approved",
    "old_appointment_date": "Nov 30, 2026",
    "old_appointment_date_time": "Nov 30, 2026, 10:00 AM",
    "old_appointment_start_time": "10:00 AM",
    "old_appointment_end_time": "11:30 AM",
    "old_staff_name": "Ann Old",
    "old_location_name": "Bastille",
    "old_service_name": "Color",
    "fire_time": "Dec 1, 2026, 10:30 AM",
    "offset": "-30m",
    "last_visit_date": "Jun 1, 2026",
    "reply_text": "  c ",
    "reply_channel": "sms",
    "failed_channel": "whatsapp",
    "failure_code": "30003",
    "failure_reason": "unreachable handset",
}
# The nested objects, one path each; the other fields are reached the same way.
NESTED = {
    "appointment": ("appointment.custom.x", "from the appointment"),
    "customer": ("customer.custom.y", "from the customer"),
    "service": ("service.name", "Haircut"),
    "staff": ("staff.email", "bob@example.com"),
    "location": ("location.timezone", "Europe/Paris"),
}
TRIGGER = {"old_status": "pending", "new_status": "approved",
           "fire_time": "2026-12-01T09:30:00+00:00", "offset": "-30m",
           "old_starts_at": "2026-11-30T09:00:00+00:00", "old_ends_at": "2026-11-30T10:30:00+00:00",
           "old_staff_name": "Ann Old", "old_location_name": "Bastille", "old_service_name": "Color",
           "last_visit_at": "2026-06-01T12:00:00+00:00",
           "reply_text": "  c ", "reply_channel": "sms", "failed_channel": "whatsapp", "failure_code": "30003",
           "failure_reason": "unreachable handset"}


def test_every_keyword_has_an_expected_value_here():
    # a schedule's own (the list and its window) are a schedule's message's: tests/test_recurring.py
    assert set(EXPECTED) | set(NESTED) == keywords.EVERY - {"appointments", "window_start", "window_end"}


# Booknetic's own keyword list: the short codes its core registers for the Workflows module (Booknetic 3 and 4),
# with one each of the families named after a status or a payment gateway.
BOOKNETIC = """
appointment_id appointment_date appointment_start_date appointment_end_date appointment_date_time
appointment_start_date_time appointment_end_date_time appointment_start_time appointment_end_time
appointment_date_client appointment_start_date_client appointment_end_date_client appointment_date_time_client
appointment_start_date_time_client appointment_end_date_time_client appointment_start_time_client
appointment_end_time_client appointment_duration appointment_buffer_before appointment_buffer_after
appointment_status appointment_service_price appointment_extras_price appointment_extras_list
appointment_discount_price appointment_sum_price appointments_total_price recurring_appointments_date
recurring_appointments_date_time recurring_appointments_date_client recurring_appointments_date_time_client
appointment_paid_price appointment_payment_method appointment_created_date appointment_created_time
appointment_created_date_client appointment_created_time_client appointment_brought_people
appointment_total_attendees add_to_google_calendar_link appointment_notes
service_name service_price service_duration service_notes service_color service_image_url service_category_name
customer_full_name customer_first_name customer_last_name customer_phone customer_email customer_birthday
customer_notes customer_profile_image_url customer_password url_to_complete_customer_signup url_to_reset_password
staff_name staff_email staff_phone staff_about staff_profile_image_url
location_name location_address location_image_url location_phone_number location_notes location_google_maps_url
company_name company_image_url company_website company_phone company_address sign_in_page sign_up_page
total_appointments_in_group link_to_change_appointment_status_to_approved appointment_payment_link_stripe
""".split()
# The keywords Booknetic's add-ons register (Zoom, Custom Forms with a form input of id 7, Coupons, Gift cards,
# Packages, Customer Panel), as each add-on names them.
BOOKNETIC_ADD_ONS = """
zoom_meeting_url zoom_meeting_host_url zoom_meeting_password
appointment_custom_field_7 appointment_custom_field_7_url appointment_custom_field_7_path
coupon_code giftcard_code customer_panel_url
package_booking_id package_booking_note package_booking_price package_booking_expires_on
package_booking_payment_method package_id package_name package_image_url package_color package_note package_services
""".split()
DOCS = Path(__file__).parents[1] / "docs" / "workflows.md"


def docs_booknetic_table() -> dict[str, str]:
    """Each keyword named in the first column of the docs' table of Booknetic's keywords, with what the
    second column says of it: 'absent', or 'offered' (a name of its own or the same name)."""
    section = DOCS.read_text().split("## Booknetic's keywords", 1)[1].split("\n## ", 1)[0]
    table = {}
    for names, verdict in re.findall(r"^\| (.+?) \| (.+?) \|$", section, re.M):
        if names != "Booknetic":  # the header
            table.update(dict.fromkeys(re.findall(r"`([^`]+)`", names),
                                       "absent" if verdict.startswith("absent") else "offered"))
    return table


DOCS_TABLE = docs_booknetic_table()


def _pattern(name: str) -> re.Pattern:
    """A name of the docs' table as a pattern: a family (``..._to_<status>``) matches each of its keywords."""
    return re.compile("[a-z0-9]+".join(re.escape(part) for part in re.split(r"<[^>]+>", name)))


def in_docs_table(keyword: str) -> str | None:
    """What the docs' table says of *keyword*: by its name, or by its family's."""
    if keyword in DOCS_TABLE:
        return DOCS_TABLE[keyword]
    return next((verdict for name, verdict in DOCS_TABLE.items() if "<" in name and _pattern(name).fullmatch(keyword)),
                None)


def test_the_docs_table_of_booknetics_keywords_is_read():
    assert len(DOCS_TABLE) > len(BOOKNETIC) // 2 and set(DOCS_TABLE.values()) == {"absent", "offered"}
    assert DOCS_TABLE["coupon_code"] == "absent" and DOCS_TABLE["service_name"] == "offered"


@pytest.mark.parametrize("keyword", BOOKNETIC + BOOKNETIC_ADD_ONS)
def test_every_booknetic_keyword_is_offered_or_its_absence_is_explained(keyword):
    offered, absence = keyword in keywords.EVERY, keywords.booknetic_absence(keyword)
    assert offered != bool(absence)
    assert in_docs_table(keyword) == ("offered" if offered else "absent")
    if offered:  # pasted as Booknetic writes it, the same text as the Jinja form
        assert rendered(from_booknetic(f"{{{keyword}}}"), **TRIGGER) == EXPECTED[keyword]
    else:  # the reason, never a "did you mean" pointing at another keyword
        for pasted in (f"Hi {{{keyword}}}", f"Hi {{{{ {keyword} }}}}"):
            assert check(from_booknetic(pasted), keywords.EVERY) == [
                f"'{keyword}' is a Booknetic keyword that apptflow does not offer: {absence}"]


@pytest.mark.parametrize("name", sorted(DOCS_TABLE))
def test_every_keyword_the_docs_table_names_is_as_the_engine_has_it(name):
    keyword = re.sub(r"<[^>]+>", "x", name)  # one of a family's
    if DOCS_TABLE[name] == "offered":
        assert keyword in keywords.EVERY, f"the docs offer {name}, which apptflow does not have"
    else:
        assert keyword not in keywords.EVERY and keywords.booknetic_absence(keyword), \
            f"the docs say {name} is absent, and apptflow does not say why"
    assert any(_pattern(name).fullmatch(k) for k in BOOKNETIC + BOOKNETIC_ADD_ONS), \
        f"{name} is not one of Booknetic's keywords as listed here"


def test_every_absence_apptflow_explains_is_in_the_docs_table():
    assert {name for name in keywords.BOOKNETIC_ABSENT if DOCS_TABLE.get(name) != "absent"} == set()


@pytest.mark.parametrize("keyword, expected", sorted(EXPECTED.items()))
def test_a_keyword_renders_its_value(keyword, expected):
    assert rendered(f"{{{{ {keyword} }}}}", **TRIGGER) == expected


@pytest.mark.parametrize("path, expected", sorted(NESTED.values()))
def test_a_nested_field_renders_its_value(path, expected):
    assert rendered(f"{{{{ {path} }}}}", **TRIGGER) == expected


def _with(the_booking: Booking, **changes) -> Booking:
    """*the_booking* with fields of its records replaced: ``appointment={"total_price": None}``."""
    return dataclasses.replace(the_booking, **{
        record: dataclasses.replace(getattr(the_booking, record), **fields) if fields is not None else None
        for record, fields in changes.items()})


def test_without_a_total_the_sum_price_is_the_service_price_less_the_discount():
    assert rendered("{{ appointment_sum_price }}", _with(booking(), appointment={"total_price": None})) == "40.50"
    no_discount = _with(booking(), appointment={"total_price": None, "discount_price": None})
    assert rendered("{{ appointment_sum_price }}", no_discount) == "45.50"
    assert rendered("{{ appointment_sum_price }}|{{ appointment_paid_price }}",
                    _with(no_discount, service=None, appointment={"paid_price": None})) == "|"


def test_prices_follow_the_customers_locale():
    assert rendered("{{ appointment_sum_price }} {{ appointment_paid_price }}",
                    _with(booking(locale="fr"), appointment={"total_price": "1234.5"})) == "1 234,50 10,00"


def test_the_maps_url_searches_the_address_when_the_location_has_no_coordinates():
    nowhere = _with(booking(), location={"latitude": None, "longitude": None})
    assert rendered("{{ location_google_maps_url }}", nowhere) == \
        "https://maps.google.com/?q=1%20rue%20Scribe%2C%20Paris"
    assert rendered("{{ location_google_maps_url }}", _with(nowhere, location={"address": None})) == ""
    assert rendered("[{{ location_google_maps_url }}]", _with(booking(), location=None)) == "[]"


def test_the_calendar_link_names_the_service_and_the_place_it_has():
    text = rendered("{{ add_to_google_calendar_link }}",
                    _with(booking(), location={"address": None}, service={"name": "Cut & colour"}))
    assert "&text=Cut%20%26%20colour&" in text and text.endswith("&location=Op%C3%A9ra")


def test_a_birthday_is_a_date_of_the_customers_locale_or_the_text_as_written():
    assert rendered("{{ customer_birthday }}", booking(locale="de")) == "17.05.1990"
    assert rendered("{{ customer_birthday }}", _with(booking(), customer={"birthday": "17/05"})) == "17/05"
    assert rendered("[{{ customer_birthday }}]", _with(booking(), customer={"birthday": None})) == "[]"


def test_attendees_count_the_customer_and_the_people_they_bring():
    alone = _with(booking(), appointment={"attendees": 1})
    assert rendered("{{ appointment_total_attendees }}+{{ appointment_brought_people }}", alone) == "1+0"


def test_nested_objects_carry_every_field_of_their_row():
    text = ("{{ appointment.id }} {{ appointment.status }} {{ appointment.custom.parent_phone }} "
            "{{ customer.first_name }} {{ customer.telegram_chat_id }} {{ service.duration_minutes }} "
            "{{ staff.name }} {{ location.name }} {{ appointment.starts_at.isoformat() }}")
    assert rendered(text) == "9 approved +33612345678 Jane 4242 90 Bob Martin Opéra 2026-12-01T10:00:00+00:00"


def test_custom_fields_can_be_read_with_brackets_too():
    assert rendered("{{ appointment.custom['parent_phone'] }}") == "+33612345678"


def test_a_custom_field_named_like_a_dict_method_is_the_field():
    assert rendered("{{ appointment.custom.items }}|{{ appointment.custom.values }}",
                    booking(items="2 coffees", values="calm")) == "2 coffees|calm"


def test_a_customer_trigger_offers_the_customer_and_company_keywords():
    context = context_for(Booking(appointment=None, customer=booking().customer))
    assert keywords.available("customer_created") <= set(context)
    assert not keywords.APPOINTMENT & set(context)
    assert render("{{ customer_full_name }} ({{ customer.custom.y }}) at {{ company_name }}", context) == \
        "Jane Doe (from the customer) at Salon Opéra"


def test_the_trigger_keywords_come_from_extra():
    assert rendered("{{ old_status }} → {{ new_status }}", old_status="pending", new_status="canceled") == \
        "pending → canceled"
    assert rendered("{{ fire_time }} ({{ offset }})", fire_time="2026-12-01T09:30:00+00:00", offset="-30m") == \
        "Dec 1, 2026, 10:30 AM (-30m)"


def test_a_fire_time_given_as_a_datetime_is_written_like_the_other_times():
    assert rendered("{{ fire_time }}", fire_time=at("2026-12-01T09:30:00+00:00")) == "Dec 1, 2026, 10:30 AM"


@pytest.mark.parametrize("minutes, expected", [(90, "1h 30m"), (45, "45m"), (120, "2h"), (0, "0m")])
def test_the_duration_is_written_in_hours_and_minutes(minutes, expected):
    assert rendered("{{ appointment_duration }}", booking(minutes=minutes)) == expected


@pytest.mark.parametrize("price, locale, expected", [
    ("45.5", "en", "45.50"), ("1234.5", "en", "1,234.50"), ("1234.5", "fr_FR", "1 234,50"),  # plain space
    ("1234.5", "de", "1.234,50"), (None, "en", ""), ("on request", "en", "on request"),
])
def test_prices_are_written_for_the_customers_locale(price, locale, expected):
    assert rendered("{{ service_price }}", booking(price=price, locale=locale)) == expected


# --- dates and times: the location's zone, the customer's language -----------------------------


@pytest.mark.parametrize("locale, start, date_time", [
    ("en", "11:00 AM", "Dec 1, 2026, 11:00 AM"),
    ("en_GB", "11:00", "1 Dec 2026, 11:00"),
    ("fr_FR", "11:00", "1 déc. 2026, 11:00"),
    ("fr-FR", "11:00", "1 déc. 2026, 11:00"),
    ("de", "11:00", "01.12.2026, 11:00"),
])
def test_times_follow_the_customers_locale_in_the_locations_zone(locale, start, date_time):
    text = rendered("{{ appointment_start_time }}|{{ appointment_date_time }}", booking(locale=locale))
    assert text == f"{start}|{date_time}"


def test_month_and_day_names_are_in_the_customers_language():
    source = "{{ appointment_date }} / {{ appointment.starts_at | format_date('EEEE d MMMM y') }}"
    assert rendered(source, booking(locale="fr_FR")) == "1 déc. 2026 / mardi 1 décembre 2026"
    assert rendered(source, booking(locale="de_DE")) == "01.12.2026 / Dienstag 1 Dezember 2026"


def test_dates_use_plain_spaces_for_sms():
    # CLDR writes "11:00\u202fAM"; GSM-7 has no narrow no-break space.
    assert rendered("{{ appointment_start_time }} {{ appointment.starts_at | format_datetime('short') }}") == \
        "11:00 AM 12/1/26, 11:00 AM"


def test_without_a_customer_locale_the_appointments_is_used():
    the_booking = booking(locale=None)
    assert str(locale_of(the_booking)) == "de"
    assert rendered("{{ appointment_start_time }}", the_booking) == "11:00"


@pytest.mark.parametrize("customer_zone, client_start", [
    ("America/New_York", "5:00 AM"),  # EST, UTC-5
    ("Asia/Tokyo", "7:00 PM"),
    (None, "11:00 AM"),  # no zone of their own: the location's
    ("Mars/Olympus_Mons", "11:00 AM"),  # an unknown one: the location's as well
])
def test_client_keywords_are_in_the_customers_own_zone(customer_zone, client_start):
    text = rendered("{{ appointment_start_time_client }}|{{ appointment_start_time }}",
                    booking(customer_zone=customer_zone))
    assert text == f"{client_start}|11:00 AM"


def test_a_client_date_can_be_the_day_before():
    late = booking(starts="2026-12-02T02:00:00+00:00")
    assert rendered("{{ appointment_date }}|{{ appointment_date_client }}|{{ appointment_date_time_client }}", late) \
        == "Dec 2, 2026|Dec 1, 2026|Dec 1, 2026, 9:00 PM"


def test_summer_and_winter_times_in_the_same_zone():
    summer, winter = booking(starts="2026-07-01T10:00:00+00:00"), booking(starts="2026-12-01T10:00:00+00:00")
    source = "{{ appointment_start_time }} ({{ appointment_start_time_client }} in New York)"
    assert rendered(source, summer) == "12:00 PM (6:00 AM in New York)"
    assert rendered(source, winter) == "11:00 AM (5:00 AM in New York)"


def test_an_appointment_across_the_spring_change_ends_two_wall_clock_hours_later():
    # Paris moves from UTC+1 to UTC+2 at 01:00 UTC on 29 March 2026.
    night = booking(starts="2026-03-29T00:30:00+00:00", minutes=60, locale="fr_FR")
    assert rendered("{{ appointment_start_time }}–{{ appointment_end_time }} ({{ appointment_duration }})", night) \
        == "01:30–03:30 (1h)"


def test_an_unknown_location_zone_falls_back_to_utc():
    context = context_for(booking(location_zone="Nowhere/Special"))
    assert render("{{ appointment_start_time }} {{ location_timezone }}", context) == "10:00 AM UTC"
    assert zone("Nowhere/Special").key == zone(None).key == "UTC"



@pytest.mark.parametrize("offset, start, full", [
    ("+05:45", "3:45 PM", "GMT+05:45"),  # a site set to "UTC+5.75": no IANA zone has it
    ("-03:30", "6:30 AM", "GMT-03:30"),
    ("+00:00", "10:00 AM", "GMT+00:00"),
])
def test_a_location_at_a_fixed_offset_from_utc(offset, start, full):
    context = context_for(booking(location_zone=offset, customer_zone=offset))
    assert render("{{ appointment_start_time }}|{{ appointment_start_time_client }}|{{ location_timezone }}|"
                  "{{ appointment.starts_at | format_datetime('h:mm a zzzz') }}", context) \
        == f"{start}|{start}|{offset}|{start} {full}"
    summer = booking(starts="2026-07-01T10:00:00+00:00", location_zone=offset)
    assert rendered("{{ appointment_start_time }}", summer) == start  # no daylight saving time
    assert zone("+5:45").key == zone("UTC+3").key == zone("+24:00").key == "UTC"  # only ±HH:MM is an offset

@pytest.mark.parametrize("locale", ["xx_INVALID", "123", "", "C"])
def test_an_unknown_locale_falls_back_to_the_appointments_then_english(locale):
    assert rendered("{{ appointment_start_time }}", booking(locale=locale)) == "11:00"  # the appointment's: de
    nobody = dataclasses.replace(booking(locale=locale), appointment=dataclasses.replace(
        booking().appointment, locale="zz"))
    assert rendered("{{ appointment_start_time }}", nobody) == "11:00 AM"


# --- format filters ------------------------------------------------------------------------------


@pytest.mark.parametrize("locale, expected", [
    ("en", "Tuesday 1 December|11:00 AM|12/1/26, 11:00 AM"),
    ("fr_FR", "mardi 1 décembre|11:00|01/12/2026 11:00"),
    ("de", "Dienstag 1 Dezember|11:00|01.12.26, 11:00"),
])
def test_format_filters_use_the_customers_locale_and_the_locations_zone(locale, expected):
    source = ("{{ appointment.starts_at | format_date('EEEE d MMMM') }}|{{ appointment.starts_at | format_time }}|"
              "{{ appointment.starts_at | format_datetime('short') }}")
    assert rendered(source, booking(locale=locale)) == expected


def test_format_filters_take_a_cldr_pattern():
    assert rendered("{{ appointment.ends_at | format_time('HH:mm') }} {{ appointment.starts_at | "
                    "format_datetime(\"EEE d MMM 'at' h a\") }}") == "12:30 Tue 1 Dec at 11 AM"


def test_format_filters_read_iso_text_from_custom_fields():
    the_booking = booking(birthday="1990-12-01", callback="2026-12-01T18:00:00+00:00", naive="2026-12-01T18:00:00")
    source = ("{{ appointment.custom.birthday | format_date('d MMMM') }}|"
              "{{ appointment.custom.callback | format_time }}|{{ appointment.custom.naive | format_time }}")
    # A date alone is that date in any zone; a time without an offset is UTC, like every time inside.
    assert rendered(source, dataclasses.replace(the_booking, location=dataclasses.replace(
        the_booking.location, timezone="America/Los_Angeles"))) == "1 December|10:00 AM|10:00 AM"


def test_format_filters_render_nothing_for_an_empty_value_and_never_today():
    assert rendered("[{{ customer.custom.allergies | format_date }}{{ none | format_datetime }}"
                    "{{ none | format_time }}{{ '' | format_date }}]") == "[]"


@pytest.mark.parametrize("source, message", [
    ("{{ 'soon' | format_date }}", "format_date: not an ISO 8601 date or time: 'soon'"),
    ("{{ 42 | format_time }}", "format_time: not a date or time: int"),
    ("{{ '2026-12-01' | format_time }}", "format_time: 2026-12-01 is a date without a time"),
])
def test_format_filters_say_what_they_could_not_read(source, message):
    with pytest.raises(RenderError, match=message):
        rendered(source)


def test_format_filters_outside_a_booking_use_english_and_utc():
    assert render("{{ when | format_datetime('short') }}", {"when": at("2026-12-01T10:00:00+00:00")}) == \
        "12/1/26, 10:00 AM"
    assert render("{{ when | format_time }}", {"when": at("2026-12-01T10:00:00+00:00"),
                                                "_locale": "not a locale", "location_timezone": "Bad/Zone"}) == \
        "10:00 AM"


# --- missing things ------------------------------------------------------------------------------


def test_none_renders_as_an_empty_string():
    assert rendered("[{{ staff.telegram_chat_id }}][{{ customer.custom.allergies }}][{{ none }}]") == "[][][]"


def test_missing_optional_columns_are_empty_keywords_not_none():
    the_booking = booking()
    bare = dataclasses.replace(the_booking, staff=dataclasses.replace(the_booking.staff, email=None, phone=None),
                               location=dataclasses.replace(the_booking.location, address=None))
    assert rendered("[{{ staff_email|upper }}][{{ staff_phone ~ '' }}][{{ location_address }}]", bare) == "[][][]"


def test_a_missing_custom_field_is_an_error_that_names_it():
    with pytest.raises(RenderError, match=r"appointment\.custom has no field 'nope'"):
        rendered("Call {{ appointment.custom.nope }}")
    with pytest.raises(RenderError, match=r"appointment\.custom has no field 'parent_phon' \(did you mean "
                                          r"'parent_phone'\?\)"):
        rendered("{{ appointment.custom.parent_phon }}")
    with pytest.raises(RenderError, match=r"customer\.custom has no field 'x'"):
        rendered("{{ customer.custom.x }}")


def test_a_missing_keyword_is_an_error_that_names_it():
    with pytest.raises(RenderError, match="'customer_nmae' is undefined"):
        rendered("Hello {{ customer_nmae }}")


def test_a_syntax_error_names_its_line():
    with pytest.raises(RenderError, match="template error on line 2"):
        rendered("Hello\n{{ customer_first_name }")


# --- the sandbox ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ x.__class__ }}",
    "{{ appointment.__class__ }}",
    "{{ x|attr('__class__') }}",
    "{{ appointment|attr('__class__') }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ appointment.starts_at.__class__.__subclasses__() }}",
])
def test_python_internals_are_out_of_reach(source):
    with pytest.raises(RenderError, match="not allowed in a template: access to attribute '__"):
        rendered(source)


@pytest.mark.parametrize("source", [
    "{{ appointment.custom.update({'a': 1}) }}",
    "{{ customer.custom.pop('y') }}",
    "{% set tags = [] %}{{ tags.append(1) }}",
])
def test_a_template_cannot_mutate_its_data(source):
    the_booking = booking()
    context = context_for(the_booking)
    with pytest.raises(RenderError, match="not allowed in a template: access to attribute '(update|pop|append)'"):
        render(source, context)
    assert context["appointment"]["custom"] == the_booking.appointment.custom
    assert context["customer"]["custom"] == the_booking.customer.custom == {"y": "from the customer",
                                                                               "allergies": None}


# Each is refused before it runs (the message says which bound): a worker never builds the huge value.
@pytest.mark.parametrize("source, message", [
    ("{{ range(10**9) }}", "Range too big"),
    ("{{ 'x' * 10**9 }}", "output limit: a repeated value"),
    ("{{ [appointment] * 10**8 }}", "output limit: a repeated value"),
    ("{{ ['y' * 99999] * 99999 }}", "output limit: a repeated value"),
    ("{{ 2 ** 100000 }}", "powers above 4096 bits"),
    ("{{ (10 ** 64) ** 64 }}", "powers above 4096 bits"),
    ("{% set n = 10 ** 1000 %}{{ n * n * n * n * n }}", "numbers above 4096 bits"),
    ("{{ '%1000000000d' % 1 }}", "output limit: a % field"),
    ("{{ '%*d' % (10**9, 1) }}", "'\\*' widths are not allowed"),
    ("{{ '{:>1000000000}'.format(1) }}", "output limit: a format field"),
    ("{{ '{:{}}'.format(1, 10**9) }}", "computed format widths"),
    ("{{ ('{:>1000000000}'|attr('format'))(1) }}", "output limit: a format field"),
    ("{{ 'a'|center(10**9) }}", "output limit: a centred value"),
    ("{{ 'a'.ljust(10**9) }}", "output limit: a padded value"),
    ("{{ 'x'|indent(10**9) }}", "output limit: an indent"),
    ("{{ ('x' * 99999).replace('x', 'yy') }}", "output limit: a replaced value"),
    ("{{ ('x' * 99999)|replace('', 'yy') }}", "output limit: a replaced value"),
    ("{{ ('x' * 99999).join('x' * 99999) }}", "output limit: a joined value"),
    ("{{ range(99999)|map('string')|join('x' * 99999) }}", "output limit: the result of |map"),
    ("{{ ('x' * 999)|wordwrap(1, wrapstring='y' * 999) }}", "output limit: a wrapped value"),
    ("{{ 'a\tb'.expandtabs(10**9) }}", "output limit: a tab size"),
    ("{{ (1, 2)|batch(10**9, 'x')|list }}", "output limit: a batch"),
    ("{{ (1, 2)|batch(linecount=10**9, fill_with='x')|list }}", "output limit: a batch"),
    ("{{ 'a\tb'.expandtabs(tabsize=10**9) }}", "output limit: a tab size"),
    ("{{ lipsum(10**6) }}", "output limit: lorem ipsum"),
    ("{% set s = 'y' * 99999 %}{% for i in range(40) %}{% set s = s ~ s %}{% endfor %}", "a joined value"),
    ("{% set s = 'y' * 99999 %}{% for i in range(40) %}{% set s = s + s %}{% endfor %}", "a joined value"),
    ("{% set s = 'y' * 60000 %}{% set s %}{{ s }}{{ s }}{% endset %}", "a block's text"),
    ("{% set l = ['y' * 99999] %}{% for i in range(40) %}{% set l = [l, l] %}{% endfor %}{{ l }}",
     "a printed value"),
    ("{% set l = ['y' * 60000] * 1 %}{% set l = [l, l] %}{{ l|string }}", "the input of |string"),
    ("{% for a in range(100000) %}{{ a }}{{ 'x' * 99 }}{% endfor %}", "output limit: more than 100000"),
])
def test_a_template_cannot_build_a_huge_value(source, message):
    with pytest.raises(RenderError, match=message):
        rendered(source)


def test_a_slow_template_stops_at_its_deadline():
    nested = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(RenderError, match="template took longer than 0.3 s"):
        render(nested, context_for(), timeout=0.3)


def test_the_deadline_also_stops_a_loop_inside_one_expression():
    # One line of template: the loop runs in the filters, each item checked against the deadline.
    busy = "{{ range(100000)|map('string')|map('length')|map('string')|map('length')|sum }}"
    with pytest.raises(RenderError, match="template took longer than 0.01 s"):
        render(busy, context_for(), timeout=0.01)


def test_output_is_limited_to_max_output():
    with pytest.raises(RenderError, match="output limit: more than 50 characters"):
        render("{% for i in range(10) %}{{ customer_full_name }}{% endfor %}", context_for(), max_output=50)
    assert render("{{ customer_full_name }}", context_for(), max_output=50) == "Jane Doe"


def test_a_template_within_the_bounds_renders_as_jinja_would():
    source = ("{% set ns = namespace(total=0) %}{% for i in range(4) %}{% set ns.total = ns.total + i %}{% endfor %}"
              "{{ ns.total }} {{ 'ab' * 3 }} {{ 2 ** 10 }} {{ '%05.1f' % 3.14159 }} {{ '{:>4}'.format('r') }} "
              "{{ [1] + [2] }} {{ 'a' ~ 1 }} {{ range(3)|map('string')|join(',') }} {{ 'x'|center(5) }}|"
              "{% macro hi(name) %}Hi {{ name }}{% endmacro %}{{ hi(customer_first_name) }} "
              "{% filter upper %}{{ service_name }}{% endfilter %} {{ [3, 1, 2]|sort|join }}")
    assert rendered(source) == "6 ababab 1024 003.1    r [1, 2] a1 0,1,2   x  |Hi Jane HAIRCUT 123"


# --- validation ----------------------------------------------------------------------------------


def test_compiling_a_template_runs_none_of_it():
    # Validation compiles every template; constant folding would run this at that moment, unbounded.
    calls = []
    environment = make_environment()
    environment.filters["record"] = lambda value: calls.append(value) or value
    environment.from_string("{{ 'x'|record }}{% set y = 'y'|record %}{% if 'z'|record %}{% endif %}"
                            "{{ '%1000000000d' % 1 }}{{ 'a'|center(1000000000) }}")
    assert calls == []


def test_check_reports_unknown_and_unavailable_keywords():
    available = keywords.available("appointment_created")
    assert check("{{ custmer_email }} {{ old_status }} {{ service_name }}", available, "appointment_created") == [
        "unknown keyword 'custmer_email' (did you mean 'customer_email'?)",
        "keyword 'old_status' is not available for appointment_created",
    ]


def test_check_finds_syntax_errors_and_runs_nothing():
    assert check("{{ 'a'|center(1000000000) }}", keywords.EVERY) == []
    assert check("{% for %}", keywords.EVERY) == [
        "template error on line 1: Expected an expression, got 'end of statement block'"]


# check() refuses only what rendering refuses too, and tells a custom field from an attribute.
@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}", "{{ customer_first_name._private }}", "{{ appointment['__class__'] }}",
    "{{ staff|attr('__init__') }}", "{{ [].append(1) }}", "{{ range(10**9) }}", "{{ 'a' * 10**9 }}",
    "{{ 2 ** (10**9) }}", "{{ 'a' * 60000 + 'b' * 60000 }}",
])
def test_what_check_refuses_fails_when_rendered(source):
    assert check(source, keywords.EVERY) != []
    with pytest.raises(RenderError):
        rendered(source)


@pytest.mark.parametrize("source, expected", [
    ("{{ 2 ** 10**9 }}", "1237940039285380274899124224"),
    ("{{ appointment.custom._ref }} {{ appointment.custom['_ref'] }}", "R R"),
    ("{% set customer_first_name = {'_a': 1} %}{{ customer_first_name._a }}", "1"),
    ("{% macro range(n) %}{{ n }}{% endmacro %}{{ range(10**9) }}", "1000000000"),
])
def test_what_check_accepts_beside_those_renders(source, expected):
    assert check(source, keywords.EVERY) == []
    assert rendered(source, booking(_ref="R")) == expected


@pytest.mark.parametrize("source, error", [
    ("{{ " + "1" * 5000 + " }}", "ValueError"),  # past Python's limit on integer literals
    ("{{ customer_first_name" + " + customer_first_name" * 300 + " }}", "SyntaxError"),  # too deep to compile
    ("{{ " + "(" * 500 + "1" + ")" * 500 + " }}", "RecursionError"),  # too deep to parse
])
def test_a_template_past_the_compilers_limits_is_an_error_not_a_crash(source, error):
    [problem] = check(source, frozenset(keywords.EVERY))
    assert problem.startswith(f"template too large or nested too deep to compile: {error}")
    with pytest.raises(RenderError, match=f"too large or nested too deep to compile: {error}"):
        render(source, {"customer_first_name": "Ada"})


@pytest.mark.parametrize("locale, label", [("en", "Approved"), ("it", "Approvato"), ("fr_FR", "Approuvé"),
                                           ("de", "Bestätigt"), ("tr", "Onaylandı"), ("es", "Aprobado"),
                                           ("pt_BR", "Approved")])
def test_the_status_reads_in_the_customers_language_and_the_code_stays_available(locale, label):
    assert rendered("{{ appointment_status }} ({{ appointment_status_code }})", booking(locale=locale)) == \
        f"{label} (approved)"


def test_a_status_of_the_applications_own_reads_as_its_code():
    the_booking = booking(locale="fr")
    the_booking = dataclasses.replace(the_booking, appointment=dataclasses.replace(the_booking.appointment,
                                                                                   status="waitlist"))
    assert rendered("{{ appointment_status }}", the_booking) == "waitlist"
