"""``schedule``: at the times of a cron expression, one message per staff member, location or the company,
listing their appointments within a window.

``cron`` is five crontab fields, read in ``timezone`` (default: each target's
own: a location's zone, the zone where a staff member works next, the
company's for the company). ``for_each`` says who gets one: ``staff``,
``location`` or ``company``. Each firing lists, as ``appointments``, the
appointments starting within ``window`` (see :class:`engine.recurring.Window`),
narrowed by the filters; ``skip_empty`` (default true) sends nothing to a
target with none. One job per workflow and target, planned by
scheduler/recurring.py.
"""

from __future__ import annotations

from engine import keywords
from engine.recurring import cron, parse_window
from engine.templates import locale_named, zone
from engine.triggers.base import AGENDAS, RECURRING, Param, TriggerType, register

FOR_EACH = ("staff", "location", "company")
# The filters that narrow the list of appointments (there is no one customer whose locale to read).
AGENDA_FILTERS = ("locations", "services", "staff", "statuses", "started_by")
_TARGET_KEYWORDS = {"staff": keywords.STAFF, "location": keywords.LOCATION, "company": frozenset()}


@register
class Schedule(TriggerType):
    name = "schedule"
    params = {"cron": Param(form="text", required=True, example='"0 18 * * *"'),
              "timezone": Param(form="text"),
              "for_each": Param(form="choice", required=True, choices=FOR_EACH, example="staff"),
              "window": Param(form="text", example='"1d from tomorrow"'),
              "skip_empty": Param(form="flag"),
              "locale": Param(form="text"),
              "grace": Param(form="duration", positive=True)}
    keywords = keywords.AGENDA | keywords.STAFF | keywords.LOCATION
    subject = AGENDAS
    planning = RECURRING
    filters = AGENDA_FILTERS

    def check(self, check, params):
        name = params.get("timezone")
        if name is not None and zone(name).key != name:
            check.add("trigger.timezone", f"unknown time zone {name!r}: an IANA name such as Europe/Paris, or an "
                                          "offset such as +05:45")
        for place, parse in (("cron", lambda text: cron(text, zone(None))), ("window", parse_window)):
            if params.get(place) is not None:
                try:
                    parse(params[place])
                except ValueError as error:
                    check.add(f"trigger.{place}", str(error))
        if params.get("locale") is not None and locale_named(params["locale"]) is None:
            check.add("trigger.locale", f"not a locale like 'en' or 'fr_FR': {params['locale']!r}")

    def parties(self, trigger):
        return ("staff",) if trigger.params.get("for_each") == "staff" else ()

    def keywords_for(self, trigger):
        return keywords.AGENDA | keywords.COMPANY | _TARGET_KEYWORDS.get(trigger.params.get("for_each"), frozenset())
