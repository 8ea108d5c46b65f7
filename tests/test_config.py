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
    ("[smtp]\nport = '25'\n", "[smtp] port: expected an integer, got '25'"),
    ("[daemon\n", "invalid TOML"),
])
def test_mistakes_in_the_file_are_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(write(tmp_path, text), environ={})


def test_bad_environment_values_are_errors():
    with pytest.raises(ConfigError, match="APPTFLOW_DAEMON_WORKERS: \\[daemon\\] workers: expected an integer"):
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


BAD = [  # (file text or None, environment, the place and key the one-line error must name)
    (None, {"APPTFLOW_DAEMON_POLL_INTERVAL": "0.2x"}, "APPTFLOW_DAEMON_POLL_INTERVAL: [daemon] poll_interval"),
    (None, {"APPTFLOW_DAEMON_POLL_INTERVAL": "5"}, "APPTFLOW_DAEMON_POLL_INTERVAL: [daemon] poll_interval"),
    (None, {"APPTFLOW_DAEMON_WORKERS": "-1"}, "APPTFLOW_DAEMON_WORKERS: [daemon] workers: -1 is out of range"),
    (None, {"APPTFLOW_DAEMON_WORKERS": "many"}, "APPTFLOW_DAEMON_WORKERS: [daemon] workers: expected an integer"),
    (None, {"APPTFLOW_DAEMON_POLL_INTERVL": "1s"}, "APPTFLOW_DAEMON_POLL_INTERVL: unknown key 'poll_intervl'"),
    (None, {"APPTFLOW_SMTP_PORT": "abc"}, "APPTFLOW_SMTP_PORT: [smtp] port: expected an integer"),
    (None, {"APPTFLOW_DATABASE_URL": "postgres//nohost"}, "APPTFLOW_DATABASE_URL: [database] url"),
    (None, {"APPTFLOW_DATABASE_URL": "oracle://u@h/db"}, "[database] url: unsupported database 'oracle'"),
    ("[daemon]\nwokers = 3\n", {}, "unknown key 'wokers' in [daemon]"),
    ("[deamon]\nworkers = 3\n", {}, "unknown section [deamon]"),
    ("[daemon\nworkers = 3\n", {}, "invalid TOML"),
    ("[smtp]\nport = 70000\n", {}, "[smtp] port: 70000 is out of range"),
    ("[metrics]\nlisten = \"localhost\"\n", {}, "[metrics] listen: 'localhost' is not host:port"),
    ("[metrics]\nlisten = \"127.0.0.1:99999\"\n", {}, "[metrics] listen"),
    ("[daemon]\nlog_level = \"verbose\"\n", {}, "[daemon] log_level: expected one of debug"),
    ("[daemon]\ndry_run = \"maybe\"\n", {}, "[daemon] dry_run: expected true or false"),
    ("[daemon]\nlease = \"0s\"\n", {}, "[daemon] lease: '0s' is out of range"),
    ("[webhook]\ntimeout = 15\n", {}, "[webhook] timeout: expected a duration with its unit"),
    ("[telegram]\napi_url = \"ftp://files.example\"\n", {}, "[telegram] api_url"),
    ("[smtp]\nfrom = \"nobody\"\n", {}, "[smtp] from: 'nobody' is not an email address"),
    ("[daemon]\nretry_base = \"2m\"\nretry_cap = \"1m\"\n", {}, "[daemon] retry_cap: 1m is shorter than retry_base"),
    ("", {"APPTFLOW_CONFIG": "/nonexistent/apptflow.toml"}, "/nonexistent/apptflow.toml: cannot read"),
    ("[company]\ncountry = \"XX\"\n", {}, "[company] country: 'XX' is not a country code"),
    ("[workflows]\nstatuses = [\"ok\", \"\"]\n", {}, "[workflows] statuses: expected a list of non-empty strings"),
]


@pytest.mark.parametrize("command", [["run"], ["status"], ["config", "check"]])
@pytest.mark.parametrize("text, environ, named", BAD, ids=[named for _, _, named in BAD])
def test_a_bad_configuration_is_one_line_naming_the_key_and_exit_1(tmp_path, command, text, environ, named):
    from click.testing import CliRunner

    from scheduler.cli import main

    env = {"APPTFLOW_CONFIG": str(write(tmp_path, text)) if text is not None else "", **environ}
    result = CliRunner().invoke(main, command, env=env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and named in lines[0], result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    if text:
        assert str(tmp_path / "apptflow.toml") in lines[0]  # the file is named


def test_config_check_shows_values_and_their_origins_with_secrets_masked(tmp_path):
    from click.testing import CliRunner

    from scheduler.cli import main

    path = write(tmp_path, '[daemon]\nworkers = 3\n[smtp]\npassword = "hunter2"\n')
    result = CliRunner().invoke(main, ["config", "check"], env={
        "APPTFLOW_CONFIG": str(path), "APPTFLOW_DAEMON_POLL_INTERVAL": "0.2s",
        "APPTFLOW_DATABASE_URL": "postgresql://app:s3cret@db/booking"})
    assert result.exit_code == 0, result.output
    assert f"  workers = 3  # file {path}" in result.output
    assert "  poll_interval = \"200ms\"  # environment APPTFLOW_DAEMON_POLL_INTERVAL" in result.output
    assert "  lease = \"2m\"  # default" in result.output
    assert "  password = \"********\"" in result.output and "hunter2" not in result.output
    assert "postgresql://app:********@db/booking" in result.output and "s3cret" not in result.output
    assert result.output.strip().endswith("configuration OK")


def test_the_configuration_is_typed_and_frozen():
    import datetime as dt

    config = load_config(None, environ={"APPTFLOW_DAEMON_POLL_INTERVAL": "0.2s", "APPTFLOW_DAEMON_WORKERS": "3"})
    assert config.get("daemon", "poll_interval") == dt.timedelta(milliseconds=200)
    assert config.get("daemon", "workers") == 3 and config.get("daemon", "log_level") == "info"
    with pytest.raises(TypeError):
        config.section("daemon")["workers"] = 4


@pytest.mark.parametrize("environ, message", [
    ({"APPTFLOW_INBOUND_LISTEN": "127.0.0.1:8471", "APPTFLOW_TWILIO_AUTH_TOKEN": "t"},
     "[inbound] listen: needs public_url too"),
    ({"APPTFLOW_INBOUND_LISTEN": "127.0.0.1:8471", "APPTFLOW_INBOUND_PUBLIC_URL": "https://x.test/a"},
     "[inbound] listen: needs [twilio] auth_token"),
    ({"APPTFLOW_INBOUND_PUBLIC_URL": "http://x.test/a"}, "is not a https URL"),
    ({"APPTFLOW_TELEGRAM_RECEIVE_REPLIES": "true"}, "[telegram] receive_replies: needs [telegram] bot_token"),
])
def test_the_inbound_endpoint_needs_the_url_twilio_signs_and_its_token(environ, message):
    with pytest.raises(ConfigError) as raised:
        load_config(None, environ=environ)
    assert message in str(raised.value)
