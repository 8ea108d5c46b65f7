"""``customer_birthday``: at ``time`` on the customer's birthday, in their zone (else the company's).

29 February birthdays are kept on 28 February in other years. Its workflows
have no appointment (as ``customer_created``'s). Refused where the booking data
has no birthday (a mapping that declares ``customers.birthday`` absent).
"""

from __future__ import annotations

from engine import keywords
from engine.recurring import parse_time_of_day
from engine.triggers.base import CUSTOMERS, RECURRING, Param, TriggerType, register


def check_time(check, params) -> None:
    if params.get("time") is not None:
        try:
            parse_time_of_day(params["time"])
        except ValueError as error:
            check.add("trigger.time", str(error))


@register
class CustomerBirthday(TriggerType):
    name = "customer_birthday"
    params = {"time": Param(form="text", required=True, example='"09:00"'),
              "grace": Param(form="duration", positive=True)}
    keywords = keywords.CUSTOMER_DATE
    subject = CUSTOMERS
    planning = RECURRING

    def check(self, check, params):
        check_time(check, params)
        if "customers.birthday" in check.absent:
            check.add("trigger.type", f"customer_birthday has no data here: customers.birthday: "
                                      f"{check.absent['customers.birthday']}")
