"""Configuration: defaults, the TOML file, APPTFLOW_<SECTION>_<KEY> overrides, secrets masked."""

from __future__ import annotations

import pytest

from scheduler.config import ConfigError, load_config, seconds


def write(tmp_path, text: str):
    path = tmp_path / "apptflow.toml"
    path.write_text(text)
    return path


def test_no_configuration_is_the_embedded_default():
    config = load_config(None, environ={})
    assert config.database_url == "sqlite:///apptflow.db" and config.source is None
    assert config.get("daemon", "workers") == 8 and config.get("webhook", "allow_private_addresses") is False


def test_the_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[database]\nurl = "postgresql+psycopg://a@h/db"\n[daemon]\nworkers = 3\n')
    config = load_config(None, environ={"APPTFLOW_CONFIG": str(path), "APPTFLOW_DAEMON_WORKERS": "5",
                                        "APPTFLOW_DAEMON_DRY_RUN": "yes"})
    assert config.source == path
    assert config.database_url == "postgresql+psycopg://a@h/db"
    assert config.get("daemon", "workers") == 5 and config.get("daemon", "dry_run") is True


@pytest.mark.parametrize("text, message", [
    ("[databse]\nurl = 'x'\n", "unknown section [databse]"),
    ("[smtp]\nhots = 'x'\n", "unknown key 'hots' in [smtp]"),
    ("[smtp]\nport = '25'\n", "[smtp] port: expected int"),
    ("[daemon\n", "invalid TOML"),
])
def test_mistakes_in_the_file_are_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(write(tmp_path, text), environ={})


def test_bad_environment_values_are_errors():
    with pytest.raises(ConfigError, match="APPTFLOW_DAEMON_WORKERS: expected an integer"):
        load_config(None, environ={"APPTFLOW_DAEMON_WORKERS": "many"})


def test_describe_masks_every_secret():
    config = load_config(None, environ={
        "APPTFLOW_DATABASE_URL": "postgresql+psycopg://app:hunter2@db/booking",
        "APPTFLOW_SMTP_PASSWORD": "smtp-secret", "APPTFLOW_TWILIO_AUTH_TOKEN": "tw-secret",
        "APPTFLOW_TELEGRAM_BOT_TOKEN": "123:tg-secret", "APPTFLOW_WEBHOOK_SECRET": "wh-secret"})
    text = repr(config.describe())
    for secret in ("hunter2", "smtp-secret", "tw-secret", "tg-secret", "wh-secret"):
        assert secret not in text
    assert "postgresql+psycopg://app:********@db/booking" in text


def test_durations_in_settings():
    assert seconds("200ms") == 0.2 and seconds("15s") == 15.0 and seconds("2m") == 120.0
