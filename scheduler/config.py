"""Configuration: one TOML file, every key overridable by ``APPTFLOW_<SECTION>_<KEY>``.

The file is ``--config``, else ``$APPTFLOW_CONFIG``, else
``/etc/apptflow/apptflow.toml`` when it exists; with none of them apptflow
runs on the embedded default, ``sqlite:///apptflow.db`` in the working
directory.

The configuration is one typed, frozen value built and checked completely
at load: every key's type, range and unit (durations are timedeltas, counts
ints, URLs parsed), unknown sections and keys refused, in the file and in
``APPTFLOW_<SECTION>_<KEY>`` variables of a known section. An error names
where the value came from (the file or the variable) and the key. Secrets
(passwords, tokens, secrets, credentials in URLs) are never shown by
:meth:`Config.describe`. Each setting says whether a running daemon can take
a new value on SIGHUP (``live``) or needs a restart.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from channels import registry as channel_registry
from channels.base import Key
from db.connect import Timeouts, connect
from db.servers import UnknownServer, server_of
from engine.durations import format_duration, parse_duration
from engine.outbox import MAX_CHAIN_DEPTH
from engine.windows import Window, WindowError, parse_window

SYSTEM_CONFIG = Path("/etc/apptflow/apptflow.toml")
DEFAULT_ORIGIN = "default"


class ConfigError(Exception):
    """The configuration is invalid."""


class _Invalid(ValueError):
    """A value does not fit its setting (the message says how)."""


# --- kinds of values ------------------------------------------------------------------------------
# Each takes the value as written (a TOML value from the file, a string from the environment) and
# returns it typed, or raises _Invalid saying what is expected.

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(minimum: str, maximum: str) -> Callable[[Any], dt.timedelta]:
    low, high = _parse_duration(minimum), _parse_duration(maximum)

    def parse(value: Any) -> dt.timedelta:
        if not isinstance(value, str):
            raise _Invalid(f"expected a duration with its unit, such as \"200ms\", \"0.2s\" or \"5m\", "
                           f"got {value!r}")
        result = _parse_duration(value)
        if not low <= result <= high:
            raise _Invalid(f"{value!r} is out of range: from {minimum} to {maximum}")
        return result
    return parse


def _parse_duration(text: str) -> dt.timedelta:
    match = _DURATION.match(text.strip().replace(" ", ""))
    if not match:
        raise _Invalid(f"{text!r} is not a duration: a number and a unit (ms, s, m, h, d, w), such as "
                       "\"200ms\", \"0.2s\" or \"5m\"")
    amount, unit = match.groups()
    return dt.timedelta(seconds=float(amount) * _UNIT_SECONDS[unit])


def count(minimum: int, maximum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {value!r}")
        if not minimum <= value <= maximum:
            raise _Invalid(f"{value} is out of range: from {minimum} to {maximum}")
        return value
    return parse


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
    raise _Invalid(f"expected true or false, got {value!r}")


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {value!r}")
    return value


def choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in options:
            raise _Invalid(f"expected one of {', '.join(options)}, got {value!r}")
        return value.strip().lower()
    return parse


def url(*schemes: str) -> Callable[[Any], str]:
    """An absolute URL of one of *schemes*, or empty (not set)."""
    def parse(value: Any) -> str:
        value = text(value).strip()
        if not value:
            return ""
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as error:
            raise _Invalid(f"{value!r} is not a URL: {error}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise _Invalid(f"{value!r} is not a {' or '.join(schemes)} URL with a host")
        return value
    return parse


def database_url(value: Any) -> str:
    value = text(value).strip()
    try:
        parsed = make_url(value)
    except ArgumentError:
        raise _Invalid(f"{_mask_url(value)!r} is not a database URL, such as sqlite:///apptflow.db or "
                       "postgresql://user@host/database") from None
    try:
        server_of(parsed)
    except UnknownServer as error:
        raise _Invalid(str(error)) from None
    return value


def identifier(value: Any) -> str:
    """A plain SQL name (lower-case letters, digits, ``_``), such as a PostgreSQL schema."""
    value = text(value).strip()
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
        raise _Invalid(f"{value!r} is not a plain SQL name (lower-case letters, digits and _)")
    return value


def name_prefix(value: Any) -> str:
    """The beginning of SQL table names (``wp_``, ``WP2_``), or empty."""
    value = text(value).strip()
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", value):
        raise _Invalid(f"{value!r} is not the beginning of a plain SQL name (letters, digits and _)")
    return value


def optional_id(value: Any) -> int | None:
    """A row id (a tenant's), or empty: none in particular."""
    if isinstance(value, int) and not isinstance(value, bool):
        return count(1, 2**63 - 1)(value)
    value = text(value).strip()
    if not value:
        return None
    if not value.isdigit():
        raise _Invalid(f"{value!r} is not an id (a positive integer), nor empty")
    return count(1, 2**63 - 1)(int(value))


def address(value: Any) -> str:
    """``host:port`` to listen on (``[::1]:9464`` for IPv6), or empty (off)."""
    value = text(value).strip()
    if not value:
        return ""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise _Invalid(f"{value!r} is not host:port, such as 127.0.0.1:9464")
    return value


def mail_address(value: Any) -> str:
    value = text(value)
    if "@" not in parseaddr(value)[1]:
        raise _Invalid(f"{value!r} is not an email address, such as \"Bookings <bookings@example.com>\"")
    return value


def words(value: Any) -> tuple[str, ...]:
    """A list of non-empty strings: a TOML array, or a comma-separated variable."""
    items = [item.strip() for item in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) and item.strip() for item in items):
        raise _Invalid(f"expected a list of non-empty strings, got {value!r}")
    return tuple(item.strip() for item in items)


def send_window(value: Any) -> Window | None:
    """A default send window, ``"09:00-21:00"`` on the recipient's clock; empty or ``none``: none."""
    try:
        return parse_window(text(value))
    except WindowError as error:
        raise _Invalid(str(error)) from None


def region(value: Any) -> str:
    """A country as ISO 3166 alpha-2 (``FR``), for phone numbers written nationally; or empty."""
    value = text(value).strip().upper()
    if value and value not in phonenumbers.SUPPORTED_REGIONS:
        raise _Invalid(f"{value!r} is not a country code such as FR, GB or US")
    return value


def time_zone(value: Any) -> str:
    """An IANA time zone (``Europe/Paris``) or a fixed offset (``+05:45``)."""
    from engine.templates import zone

    value = text(value).strip()
    if zone(value).key != value:
        raise _Invalid(f"{value!r} is not a time zone such as Europe/Paris, UTC or +05:45")
    return value


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Booknetic's appointment statuses: what set_status may write besides those the appointments hold.
STATUSES = ("pending", "approved", "canceled", "rejected", "no-show", "completed")


@dataclass(frozen=True, slots=True)
class Setting:
    """One key: its default as written in a file, how to read it, whether it is secret or can change live."""

    default: Any
    parse: Callable[[Any], Any]
    secret: bool = False
    live: bool = False


def _secret(default: Any = "", parse: Callable[[Any], Any] = text) -> Setting:
    return Setting(default, parse, secret=True, live=True)


CORE: dict[str, dict[str, Setting]] = {
    "database": {"url": Setting("sqlite:///apptflow.db", database_url, secret=True),
                 "schema": Setting("apptflow", identifier),
                 # MySQL/MariaDB: the prefix of apptflow's own table names
                 "prefix": Setting("apptflow_", identifier),
                 # a shipped mapping (calcom, booknetic) or a mapping file; empty: apptflow's reference tables
                 "mapping": Setting("", text),
                 # a mapping's {application_prefix}: the application's table prefix (WordPress's wp_)
                 "application_prefix": Setting("wp_", name_prefix),
                 # a mapping's {tenant}: the one tenant of a multi-tenant application to read; empty: all
                 "tenant": Setting("", optional_id),
                 # a server that stops answering (a partition dropping packets) is given up within this
                 "dead_peer_timeout": Setting("30s", duration("2s", "1h")),
                 # the daemon's statements end on the server after this; its wait for an answer after
                 # this + dead_peer_timeout (not the commands': `db init` may run long)
                 "statement_timeout": Setting("1m", duration("1s", "1d"))},
    "daemon": {
        "poll_interval": Setting("1s", duration("10ms", "1h"), live=True),
        "workers": Setting(8, count(1, 256), live=True),
        "dry_run": Setting(False, flag, live=True),
        "log_level": Setting("info", choice(*LOG_LEVELS), live=True),
        "log_format": Setting("text", choice("text", "json")),
        "lease": Setting("2m", duration("1s", "1d")),
        "max_chain_depth": Setting(MAX_CHAIN_DEPTH, count(0, 100), live=True),
        "retry_base": Setting("30s", duration("1ms", "1d"), live=True),
        "retry_cap": Setting("1h", duration("1ms", "30d"), live=True),
        "retry_attempts": Setting(8, count(1, 1000), live=True),
        "attachment_dir": Setting("", text, live=True),
        "heartbeat": Setting("5s", duration("50ms", "10m")),
        # how many parts the appointments and customers are shared out in among instances (docs/scale-out.md):
        # the same on every instance of one database
        "partitions": Setting(1, count(1, 1024)),
        "job_threads": Setting(4, count(1, 64)),
        "reconcile_interval": Setting("10m", duration("1s", "1d")),
        "event_retention": Setting("7d", duration("0s", "3650d"), live=True),
        "attachments_allow_private_addresses": Setting(False, flag, live=True),
    },
    "company": {**{name: Setting("", text, live=True) for name in ("name", "phone", "website", "address")},
                "country": Setting("", region, live=True),
                "image_url": Setting("", url("http", "https"), live=True),
                # the zone of recurring firings with no zone of their own (a customer without one, the company)
                "timezone": Setting("UTC", time_zone)},
    "workflows": {"statuses": Setting(list(STATUSES), words, live=True),
                  # quiet hours for every action that writes to people, unless it has its own send_window
                  "send_window": Setting("", send_window, live=True)},
    "metrics": {"listen": Setting("", address)},
    # The endpoint Twilio posts status callbacks and incoming messages to (docs/replies.md); empty: off.
    "inbound": {"listen": Setting("", address),
                "public_url": Setting("", url("https")),  # where Twilio reaches it, through the reverse proxy
                "reply_window": Setting("48h", duration("1m", "365d"))},
}

_KINDS: dict[str, Callable[[Key], Callable[[Any], Any]]] = {
    "text": lambda key: text,
    "url": lambda key: url("http", "https"),
    "mail_address": lambda key: mail_address,
    "flag": lambda key: flag,
    "count": lambda key: count(key.low, key.high),
    "duration": lambda key: duration(key.low, key.high),
    "choice": lambda key: choice(*key.choices),
}


def _channel_setting(section: str, name: str, key: Key) -> Setting:
    if key.kind not in _KINDS:
        raise ValueError(f"[{section}] {name}: a channel declares an unknown kind of value {key.kind!r}")
    return Setting(key.default, _KINDS[key.kind](key), secret=key.secret, live=key.live)


def settings() -> dict[str, dict[str, Setting]]:
    """Every section and key: apptflow's own, and each channel's section as the channel declares it
    (:mod:`channels.registry`), after ``[daemon]``."""
    channel_sections = {
        section.name: {name: _channel_setting(section.name, name, key) for name, key in section.keys.items()}
        for section in channel_registry.sections().values()
    }
    core = list(CORE.items())
    return dict(core[:2] + list(channel_sections.items()) + core[2:])


def defaults() -> dict[str, dict[str, Any]]:
    """The defaults as written in a file, by section and key (the documentation's table)."""
    return {section: {key: setting.default for key, setting in keys.items()}
            for section, keys in settings().items()}


def seconds(value: dt.timedelta | str) -> float:
    """A duration (a configured timedelta, or a workflow's ``"15s"``, ``"200ms"``) in seconds."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return parse_duration(value).total_seconds()


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Every setting, typed, by section and key; where each came from; read-only."""

    values: Mapping[str, Mapping[str, Any]]
    origins: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    source: Path | None = None

    def section(self, name: str) -> Mapping[str, Any]:
        return self.values[name]

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    @property
    def database_url(self) -> str:
        return self.values["database"]["url"]

    def connect(self, *, daemon: bool = False) -> Engine:
        """An engine on the configured database (and, on PostgreSQL, apptflow's schema there), its
        connections kept alive within ``dead_peer_timeout``; for the *daemon*, whose statements are all
        short, each statement also bounded by ``statement_timeout``."""
        database = self.values["database"]
        timeouts = Timeouts(dead_peer=database["dead_peer_timeout"].total_seconds(),
                            statement=database["statement_timeout"].total_seconds() if daemon else None)
        return connect(database["url"], schema=database["schema"], prefix=database["prefix"],
                       mapped=bool(database["mapping"]), timeouts=timeouts)

    def shown(self, section: str, key: str) -> Any:
        """A value as written in a file, a secret masked."""
        value = self.values[section][key]
        if settings()[section][key].secret and value:
            return _mask_url(value) if key.endswith("url") else "********"
        if isinstance(value, dt.timedelta):
            return format_duration(value)
        if isinstance(value, Window):
            return f"{value.opens:%H:%M}-{value.closes:%H:%M}"
        return value

    def describe(self) -> dict[str, dict[str, Any]]:
        """The settings with every secret masked, safe to print or log."""
        return {section: {key: self.shown(section, key) for key in keys} for section, keys in self.values.items()}

    def origin(self, section: str, key: str) -> str:
        return self.origins.get(section, {}).get(key, DEFAULT_ORIGIN)

    def merged_live(self, newer: "Config") -> "Config":
        """This configuration with *newer*'s values where they can change live (see Setting.live)."""
        known = settings()
        pick = {section: MappingProxyType({key: (newer if known[section][key].live else self).values[section][key]
                                           for key in keys}) for section, keys in self.values.items()}
        origins = {section: MappingProxyType({key: (newer if known[section][key].live else self).origin(section, key)
                                              for key in keys}) for section, keys in self.values.items()}
        return Config(values=MappingProxyType(pick), origins=MappingProxyType(origins), source=newer.source)

    def changes(self, newer: "Config") -> list[tuple[str, str]]:
        """The (section, key) whose value differs in *newer*."""
        return [(section, key) for section, keys in self.values.items() for key in keys
                if newer.values[section][key] != keys[key]]


def _mask_url(value: str) -> str:
    """Hide a password inside a URL (``postgresql://user:pw@host``)."""
    scheme, sep, rest = value.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return value
    return f"{scheme}://{credentials.split(':', 1)[0]}:********@{host}"


def config_path(explicit: str | os.PathLike | None, environ: Mapping[str, str]) -> Path | None:
    """Which file to read, if any."""
    if explicit:
        return Path(explicit)
    if environ.get("APPTFLOW_CONFIG"):
        return Path(environ["APPTFLOW_CONFIG"])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def load_config(explicit: str | os.PathLike | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Defaults, then the file, then ``APPTFLOW_<SECTION>_<KEY>`` variables; every value checked."""
    environ = os.environ if environ is None else environ
    known = settings()
    raw: dict[str, dict[str, tuple[Any, str]]] = {
        section: {key: (setting.default, DEFAULT_ORIGIN) for key, setting in keys.items()}
        for section, keys in known.items()
    }
    path = config_path(explicit, environ)
    if path is not None:
        for section, key, value in _read_file(path, known):
            raw[section][key] = (value, f"file {path}")
    for section, key, value, name in _read_environment(environ, known):
        default = known[section][key].default
        if isinstance(default, int) and not isinstance(default, bool) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)  # a variable is always text; a file says 25 or "25"
        raw[section][key] = (value, f"environment {name}")
    _polling_default(raw)
    values: dict[str, Mapping[str, Any]] = {}
    for section, keys in raw.items():
        typed = {}
        for key, (value, origin) in keys.items():
            try:
                typed[key] = known[section][key].parse(value)
            except _Invalid as error:
                where = origin.split(" ", 1)[1] if origin != DEFAULT_ORIGIN else "default"
                raise ConfigError(f"{where}: [{section}] {key}: {error}") from None
        values[section] = MappingProxyType(typed)
    _check_together(values, raw)
    origins = {section: MappingProxyType({key: origin for key, (_, origin) in keys.items()})
               for section, keys in raw.items()}
    return Config(values=MappingProxyType(values), origins=MappingProxyType(origins), source=path)


def _polling_default(raw) -> None:
    """The server's own default poll interval (MySQL/MariaDB, which send no notification), unless set."""
    url, _ = raw["database"]["url"]
    interval, origin = raw["daemon"]["poll_interval"]
    try:
        server = server_of(str(url).strip())
    except (ArgumentError, UnknownServer):
        return  # reported by the URL's own check
    if origin == DEFAULT_ORIGIN and server.default_poll_interval is not None:
        raw["daemon"]["poll_interval"] = (server.default_poll_interval, f"default for {server.label}")


def _check_together(values: Mapping[str, Mapping[str, Any]], raw) -> None:
    database = values["database"]
    own, application = database["prefix"], database["application_prefix"]
    if application and (own.startswith(application) or application.startswith(own)):
        where = raw["database"]["prefix"][1]
        raise ConfigError(f"{where.split(' ', 1)[-1]}: [database] prefix: {own!r} overlaps application_prefix "
                          f"{application!r}: apptflow's tables would be taken for the application's, and its "
                          "uninstall could reach them")
    _check_inbound(values, raw)
    daemon = values["daemon"]
    if daemon["partitions"] > 1:
        try:
            server = server_of(str(database["url"]).strip())
        except (ArgumentError, UnknownServer):
            server = None
        if server is not None and not server.shared:
            where = raw["daemon"]["partitions"][1].split(" ", 1)[-1]
            raise ConfigError(f"{where}: [daemon] partitions: {daemon['partitions']}, but {server.label} serves one "
                              "instance, which leads the one partition; several need PostgreSQL or MySQL/MariaDB")
    if daemon["retry_cap"] < daemon["retry_base"]:
        where = raw["daemon"]["retry_cap"][1]
        raise ConfigError(f"{where.split(' ', 1)[-1]}: [daemon] retry_cap: {format_duration(daemon['retry_cap'])} "
                          f"is shorter than retry_base ({format_duration(daemon['retry_base'])})")


def _check_inbound(values: Mapping[str, Mapping[str, Any]], raw) -> None:
    """The inbound endpoint needs the URL Twilio signs and the token it signs with; reading Telegram's
    replies needs the bot's token."""
    from channels.telegram import TelegramChannel
    from channels.twilio_sms import SECTION as TWILIO_SECTION

    twilio, telegram = TWILIO_SECTION.name, TelegramChannel.section.name
    inbound = values["inbound"]
    where = raw["inbound"]["listen"][1].split(" ", 1)[-1]
    if inbound["listen"] and not inbound["public_url"]:
        raise ConfigError(f"{where}: [inbound] listen: needs public_url too, the https URL at which Twilio reaches "
                          "this endpoint (Twilio signs its requests with it)")
    if inbound["listen"] and not values[twilio]["auth_token"]:
        raise ConfigError(f"{where}: [inbound] listen: needs [{twilio}] auth_token, which Twilio signs its requests "
                          "with")
    if values[telegram]["receive_replies"] and not values[telegram]["bot_token"]:
        where = raw[telegram]["receive_replies"][1].split(" ", 1)[-1]
        raise ConfigError(f"{where}: [{telegram}] receive_replies: needs [{telegram}] bot_token")


def _read_file(path: Path, known: dict[str, dict[str, Setting]]):
    try:
        document = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read the configuration: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    for section, keys in document.items():
        if section not in known or not isinstance(keys, dict):
            raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(known)})")
        for key, value in keys.items():
            if key not in known[section]:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}] "
                                  f"(known: {', '.join(known[section])})")
            yield section, key, value


def _read_environment(environ: Mapping[str, str], known: dict[str, dict[str, Setting]]):
    """``APPTFLOW_<SECTION>_<KEY>`` values; a variable naming a known section and an unknown key is an error."""
    for name, value in environ.items():
        if not name.startswith("APPTFLOW_"):
            continue
        rest = name[len("APPTFLOW_"):].lower()
        section = next((s for s in known if rest.startswith(s + "_")), None)
        if section is None:
            continue  # APPTFLOW_CONFIG, and variables of other tools
        key = rest[len(section) + 1:]
        if key not in known[section]:
            raise ConfigError(f"{name}: unknown key {key!r} in [{section}] (known: {', '.join(known[section])})")
        yield section, key, value, name


def log_level(config: Config) -> int:
    """The configured level as a number for :mod:`logging`."""
    return getattr(logging, config.get("daemon", "log_level").upper())
