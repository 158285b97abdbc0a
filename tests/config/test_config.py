"""Configuration: file + environment (env wins), secrets by reference, and every wrong setting named."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from waflow.cli import app
from waflow.config import ConfigError, hash_api_key, load_settings

NUMBER = """
[[numbers]]
phone_number_id = "106540352242922"
waba_id = "102290129340398"
token = "env:WA_TOKEN"
app_secret = "env:WA_SECRET"
verify_token = "file:{vt}"
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    vt = tmp_path / "verify-token"
    vt.write_text("the-verify-token\n")
    monkeypatch.setenv("WA_TOKEN", "EAA-token")
    monkeypatch.setenv("WA_SECRET", "app-secret-value")
    for var in ("WAFLOW_CONFIG", "WAFLOW_STORE_URL", "WAFLOW_REDIS_URL", "WAFLOW_LOG_FORMAT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def write(tmp: Path, text: str) -> Path:
    path = tmp / "waflow.toml"
    path.write_text(text.replace("{vt}", str(tmp / "verify-token")))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.problems


def test_a_good_file_loads_with_resolved_secrets_and_defaults(files: Path) -> None:
    s = load_settings(write(files, NUMBER))
    n = s.numbers[0]
    assert n.app_secret.get_secret_value() == "app-secret-value"
    assert n.verify_token.get_secret_value() == "the-verify-token"
    assert n.throughput == 80 and n.tier is None
    assert s.graph.base_url == "https://graph.facebook.com"
    assert s.log_format == "text" and s.store_url is None
    assert "app-secret-value" not in repr(s) and "EAA-token" not in repr(s)
    assert "app-secret-value" not in str(s.redacted())


def test_environment_overrides_the_file_nested_with_double_underscore(
    files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(files, NUMBER + '\n[graph]\nbase_url = "https://graph.facebook.com"\napi_version = "v22.0"\n')
    monkeypatch.setenv("WAFLOW_GRAPH__BASE_URL", "http://127.0.0.1:8088")
    monkeypatch.setenv("WAFLOW_LOG_FORMAT", "json")
    s = load_settings(path)
    assert s.graph.base_url == "http://127.0.0.1:8088"
    assert s.graph.api_version == "v22.0"  # the file's value where the environment is silent
    assert s.log_format == "json"


def test_missing_environment_variable_is_named(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WA_SECRET")
    assert problems(write(files, NUMBER)) == ["numbers[0].app_secret: environment variable WA_SECRET is not set"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("env:WA_TOKEN", "env:NOPE_TOKEN"), "numbers[0].token: environment variable NOPE_TOKEN is not set"),
        (('"file:{vt}"', '"file:/nonexistent/vt"'), "numbers[0].verify_token: file /nonexistent/vt is unreadable"),
        (("106540352242922", "12ab"), "numbers[0].phone_number_id: must be the numeric id Meta shows"),
        (('verify_token = "file:{vt}"', 'verify_token = "file:{vt}"\nthroughput = 5000'),
         "numbers[0].throughput: Input should be less than or equal to 1000"),
        (('verify_token = "file:{vt}"', 'verify_token = "file:{vt}"\ntier = "TIER_3"'),
         "numbers[0].tier: unknown messaging tier 'TIER_3'"),
        (('verify_token = "file:{vt}"', 'verify_token = "file:{vt}"\ncolour = "red"'),
         "numbers[0].colour: is not a known setting"),
        (('app_secret = "env:WA_SECRET"\n', ""), "numbers[0].app_secret: is required"),
    ],
)
def test_each_wrong_setting_is_named(files: Path, change: tuple[str, str], expected: str) -> None:
    found = problems(write(files, NUMBER.replace(*change)))
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('redis_url = "http://x"', "redis_url: must be a redis://"),
        ('log_format = "xml"', "log_format: Input should be 'text' or 'json'"),
        ('[graph]\napi_version = "23"', "graph.api_version: must look like v23.0"),
        ('[graph]\nbase_url = "ftp://x"', "graph.base_url: must be an http:// or https:// URL"),
        ('[api]\nkeys = ["short"]', "api.keys[0]: an API key needs at least 16 characters"),
        ('[api]\nkeys = ["env:NO_SUCH_KEY_VAR"]', "api.keys[0]: environment variable NO_SUCH_KEY_VAR is not"),
        ('[commands]\nstop = ["agent"]', "commands: agent: keyword 'agent' is also a stop keyword"),
        ('[server]\nport = 70000', "server.port: Input should be less than or equal to 65535"),
    ],
)
def test_top_level_settings_are_named(files: Path, extra: str, expected: str) -> None:
    found = problems(write(files, extra + "\n" + NUMBER if not extra.startswith("[") else NUMBER + "\n" + extra))
    assert any(p.startswith(expected) for p in found), found


def test_no_numbers_and_bad_toml_are_named(files: Path) -> None:
    assert problems(write(files, 'log_level = "info"\n')) == ["numbers: is required"]
    bad = files / "bad.toml"
    bad.write_text("[[numbers]\n")
    [problem] = problems(bad)
    assert problem.startswith(f"{bad}: not valid TOML")
    assert problems(files / "missing.toml") == [f"config file {files / 'missing.toml'} does not exist"]


def test_duplicate_numbers_are_refused(files: Path) -> None:
    found = problems(write(files, NUMBER + NUMBER))
    assert any("numbers[1].phone_number_id: 106540352242922 is listed twice" in p for p in found), found


def test_api_keys_are_stored_hashed(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_KEY", "k" * 20)
    s = load_settings(write(files, NUMBER + f'\n[api]\nkeys = ["env:ADMIN_KEY", "{hash_api_key("x" * 16)}"]\n'))
    assert [k.get_secret_value() for k in s.api.keys] == [hash_api_key("k" * 20), hash_api_key("x" * 16)]


def test_cli_reports_a_config_error_without_a_traceback(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WA_SECRET")
    path = write(files, NUMBER)
    commands = (["serve", "-c", str(path)], ["worker", "-c", str(path)], ["config", "check", "-c", str(path)])
    for command in commands:
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "numbers[0].app_secret: environment variable WA_SECRET is not set" in result.output
        assert "Traceback" not in result.output


def test_cli_config_check_masks_secrets(files: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check", "-c", str(write(files, NUMBER))])
    assert result.exit_code == 0, result.output
    assert "app-secret-value" not in result.output and "the-verify-token" not in result.output
    assert "**********" in result.output


def test_cli_config_check_masks_database_and_redis_passwords(files: Path) -> None:
    text = ('store_url = "postgresql+asyncpg://waflow:pg-pass%2Fword@127.0.0.1:5432/test"\n'
            'redis_url = "redis://:redis-pass-77@127.0.0.1:6379/0"\n' + NUMBER)
    result = CliRunner().invoke(app, ["config", "check", "-c", str(write(files, text))])
    assert result.exit_code == 0, result.output
    assert "pg-pass" not in result.output and "redis-pass-77" not in result.output
    assert "postgresql+asyncpg://waflow:***@127.0.0.1:5432/test" in result.output
    assert "redis://:***@127.0.0.1:6379/0" in result.output
    settings = load_settings(files / "waflow.toml")
    assert {"pg-pass/word", "redis-pass-77"} <= set(settings.secret_values()), "the log redactor knows them"


def test_engine_limits_reach_the_engine(files: Path) -> None:
    from waflow.server.parts import engine_config

    text = NUMBER + "\n[engine]\nturn_share = 7\nmax_pending_per_contact = 250\nexpression_timeout_s = 0.05\n"
    config = engine_config(load_settings(write(files, text)))
    assert (config.turn_share, config.max_pending_per_contact, config.expression_timeout) == (7, 250, 0.05)
    found = problems(write(files, NUMBER + "\n[engine]\nturn_share = 0\n"))
    assert any(p.startswith("engine.turn_share") for p in found), found
