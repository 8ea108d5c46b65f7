"""Configuration: one TOML file, every key overridable by ``APPTFLOW_<SECTION>_<KEY>``.

The file is ``--config``, else ``$APPTFLOW_CONFIG``, else
``/etc/apptflow/apptflow.toml`` when it exists; with none of them apptflow
runs on the embedded default, ``sqlite:///apptflow.db`` in the working
directory. Secrets (passwords, tokens, secrets) are never shown by
:meth:`Config.describe`.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.durations import parse_duration

SYSTEM_CONFIG = Path("/etc/apptflow/apptflow.toml")

DEFAULTS: dict[str, dict[str, Any]] = {
    "database": {"url": "sqlite:///apptflow.db"},
    "daemon": {"poll_interval": "1s", "workers": 8, "dry_run": False, "log_level": "INFO",
               "lease": "2m", "max_chain_depth": 5, "retry_base": "30s", "retry_cap": "1h",
               "retry_attempts": 8, "attachment_dir": "", "heartbeat": "5s",
               "job_threads": 4, "reconcile_interval": "10m", "event_retention": "7d",
               "attachments_allow_private_addresses": False},
    "smtp": {"host": "localhost", "port": 25, "security": "none", "username": "", "password": "",
             "from": "Bookings <bookings@example.com>", "timeout": "30s"},
    "twilio": {"account_sid": "", "auth_token": "", "from_number": "", "whatsapp_from": "",
               "api_base_url": ""},
    "sns": {"region": "", "endpoint_url": "", "access_key_id": "", "secret_access_key": ""},
    "telegram": {"bot_token": "", "api_url": "https://api.telegram.org"},
    "company": {"name": "", "phone": "", "website": "", "address": ""},
    "webhook": {"secret": "", "allow_private_addresses": False, "timeout": "15s"},
}

_SECRET_WORDS = ("password", "token", "secret", "url")


def seconds(value: str) -> float:
    """A configured duration (``"1s"``, ``"200ms"``, ``"15s"``) in seconds."""
    return parse_duration(value).total_seconds()


class ConfigError(Exception):
    """The configuration is invalid."""


def _coerce(value: str, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Every setting, by section and key, and where it came from."""

    values: Mapping[str, Mapping[str, Any]]
    source: Path | None = None

    def section(self, name: str) -> Mapping[str, Any]:
        return self.values[name]

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    @property
    def database_url(self) -> str:
        return self.values["database"]["url"]

    def describe(self) -> dict[str, dict[str, Any]]:
        """The settings with every secret masked, safe to print or log."""
        return {
            section: {key: _mask(section, key, value) for key, value in keys.items()}
            for section, keys in self.values.items()
        }


def _mask(section: str, key: str, value: Any) -> Any:
    if not value or not any(word in key for word in _SECRET_WORDS):
        return value
    if key.endswith("url"):
        return _mask_url(str(value))
    return "********"


def _mask_url(url: str) -> str:
    """Hide a password inside a URL (``postgresql://user:pw@host``)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
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
    """Defaults, then the file, then ``APPTFLOW_<SECTION>_<KEY>`` variables."""
    environ = os.environ if environ is None else environ
    values = copy.deepcopy(DEFAULTS)
    path = config_path(explicit, environ)
    if path is not None:
        _merge_file(values, path)
    for section, keys in values.items():
        for key in keys:
            name = f"APPTFLOW_{section}_{key}".upper()
            if name in environ:
                keys[key] = _coerce(environ[name], DEFAULTS[section][key], name)
    return Config(values=values, source=path)


def _merge_file(values: dict[str, dict[str, Any]], path: Path) -> None:
    try:
        document = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    for section, keys in document.items():
        if section not in values or not isinstance(keys, dict):
            raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(values)})")
        for key, value in keys.items():
            if key not in values[section]:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]")
            default = DEFAULTS[section][key]
            if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, int) and not isinstance(value, int)
            ):
                raise ConfigError(f"{path}: [{section}] {key}: expected {type(default).__name__}")
            values[section][key] = value
