"""`TokenAdmin` (debug_token, the exchange) against the emulator, and the three token messages of the client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from waflow.cloudapi import (
    AppCredentialsError,
    CloudAPIClient,
    NetworkError,
    PermanentError,
    Timeouts,
    TokenAdmin,
    TokenError,
    TokenProblem,
    spec_for,
    token_problem,
)
from waflow.cloudapi.errors import SCOPE_MANAGEMENT, SCOPE_MESSAGING
from waflow.cloudapi.token_info import assess
from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from waflow.outbox.retry import RetryPolicy

SECRET = "token-info-app-secret"
USER = "34600111222"
DAY = 86400


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with run_emulator(EmulatorConfig(app_secret=SECRET, verify_token="vt")) as handle:
        handle.add_template("hello", "Hello!")
        yield handle


def admin_for(emu: EmulatorHandle, secret: str = SECRET) -> TokenAdmin:
    return TokenAdmin(app_id=emu.config.app_id, app_secret=secret, base_url=emu.base_url,
                      timeouts=Timeouts(connect=2, read=2, total=3))


def client_for(emu: EmulatorHandle, token: str) -> CloudAPIClient:
    return CloudAPIClient(phone_number_id=emu.config.phone_number_id, waba_id=emu.config.waba_id, token=token,
                          base_url=emu.base_url, timeouts=Timeouts(connect=2, read=2, total=3))


async def test_debug_a_system_user_token(emu: EmulatorHandle) -> None:
    async with admin_for(emu) as admin:
        info = await admin.debug(emu.config.access_token)
    assert info.is_valid and info.problem is None and info.problem_text() is None
    assert info.type == "SYSTEM_USER" and info.kind == "system user" and info.never_expires
    assert info.app_id == emu.config.app_id and info.application == emu.config.app_name
    assert info.has_scope(SCOPE_MESSAGING) and info.has_scope(SCOPE_MANAGEMENT) and info.missing_scopes() == ()
    assert info.whatsapp_targets() == (emu.config.waba_id,)
    assert info.serves(emu.config.waba_id) is True and info.serves("999") is False
    assert assess(info, waba_id=emu.config.waba_id, app_id=emu.config.app_id) == []


async def test_debug_a_user_token_then_expired_then_wrong(emu: EmulatorHandle) -> None:
    token = emu.issue_token("USER", expires_in=3 * DAY, scopes=[SCOPE_MESSAGING])
    async with admin_for(emu) as admin:
        info = await admin.debug(token)
        assert info.type == "USER" and info.is_valid
        assert abs(info.expires_at - (emu.emulator.clock.now() + 3 * DAY)) <= 2
        assert info.missing_scopes() == (SCOPE_MANAGEMENT,)
        found = assess(info, waba_id=emu.config.waba_id)
        assert [f.problem for f in found] == [TokenProblem.MISSING_SCOPE]
        assert SCOPE_MANAGEMENT in found[0].text and "permission" in found[0].text

        emu.advance_clock(days=4)
        expired = await admin.debug(token)
        assert not expired.is_valid and expired.problem is TokenProblem.EXPIRED
        assert "expired" in (expired.problem_text() or "") and "190/463" in (expired.problem_text() or "")

        wrong = await admin.debug("EAAnot-a-token")
        assert wrong.problem is TokenProblem.INVALID
        text = wrong.problem_text() or ""
        assert "not valid" in text and "expired" not in text and "EAAnot-a-token" not in text
    assert expired.problem_text() != wrong.problem_text()


async def test_a_wrong_app_secret_is_named_as_such(emu: EmulatorHandle) -> None:
    async with admin_for(emu, secret="not-the-secret") as admin:
        assert "not-the-secret" not in repr(admin)
        with pytest.raises(AppCredentialsError) as info:
            await admin.debug(emu.config.access_token)
        with pytest.raises(AppCredentialsError) as exchange:
            await admin.exchange(emu.issue_token("USER"))
    for exc in (info.value, exchange.value):
        assert "app secret" in str(exc) and "not-the-secret" not in str(exc)
        assert emu.config.access_token not in str(exc)


async def test_exchange_a_short_lived_user_token(emu: EmulatorHandle) -> None:
    short = emu.issue_token("USER", expires_in=3600)
    async with admin_for(emu) as admin:
        new = await admin.exchange(short)
        assert new.access_token.get_secret_value() not in repr(new)
        assert new.expires_in is not None and abs(new.expires_in - 60 * DAY) <= 2
        info = await admin.debug(new.access_token.get_secret_value())
        assert info.type == "USER" and info.is_valid and not info.never_expires

        emu.advance_clock(hours=2)
        with pytest.raises(TokenError) as expired:
            await admin.exchange(short)
        assert expired.value.token_problem is TokenProblem.EXPIRED
        with pytest.raises(TokenError) as wrong:
            await admin.exchange("EAAnope")
        assert wrong.value.token_problem is TokenProblem.INVALID and "EAAnope" not in str(wrong.value)


async def test_debug_token_without_an_answer_is_a_network_error(emu: EmulatorHandle) -> None:
    emu.faults.set(drop_rate=1.0, only_messages=False)
    async with admin_for(emu) as admin:
        with pytest.raises(NetworkError) as info:
            await admin.debug(emu.config.access_token)
    text = str(info.value)
    assert SECRET not in text and emu.config.access_token not in text


def test_the_table_tells_an_expired_token_from_a_wrong_one() -> None:
    assert token_problem(190, 463) is TokenProblem.EXPIRED
    assert token_problem(190, None) is TokenProblem.INVALID
    assert token_problem(190, 460) is TokenProblem.INVALID
    assert token_problem(10) is TokenProblem.MISSING_SCOPE
    assert token_problem(131000) is None
    expired, wrong = spec_for(190, 463), spec_for(190)
    assert expired is not None and wrong is not None
    assert "expired" in expired.title.lower() and "expired" not in (wrong.title + wrong.details).lower()


async def test_three_messages_on_the_send_path(emu: EmulatorHandle) -> None:
    """A wrong token, an expired one and one without the scope read differently, down to the outbox row."""
    policy = RetryPolicy()
    short = emu.issue_token("USER", expires_in=60)
    no_scope = emu.issue_token("SYSTEM_USER", scopes=[SCOPE_MANAGEMENT])
    emu.advance_clock(seconds=120)
    errors = {}
    for name, token in (("wrong", "EAAwrong-token"), ("expired", short), ("scope", no_scope)):
        async with client_for(emu, token) as wa:
            with pytest.raises((TokenError, PermanentError)) as info:
                await wa.send_template(USER, "hello", "en_US")
        errors[name] = info.value
    wrong, expired, scope = errors["wrong"], errors["expired"], errors["scope"]
    assert isinstance(wrong, TokenError) and wrong.token_problem is TokenProblem.INVALID
    assert isinstance(expired, TokenError) and expired.token_problem is TokenProblem.EXPIRED
    assert isinstance(scope, PermanentError) and scope.token_problem is TokenProblem.MISSING_SCOPE
    assert scope.info.missing_scope == SCOPE_MESSAGING
    rows = {name: policy.decide(exc, failures=1, throttles=0).text for name, exc in errors.items()}
    assert "expired" not in rows["wrong"].lower() and "not valid" in rows["wrong"]
    assert "expired" in rows["expired"].lower()
    assert SCOPE_MESSAGING in rows["scope"] and "permission" in rows["scope"]
    assert len(set(rows.values())) == 3
    for token in ("EAAwrong-token", short, no_scope):
        assert all(token not in text for text in rows.values())


async def test_templates_name_the_management_scope(emu: EmulatorHandle) -> None:
    token = emu.issue_token("SYSTEM_USER", scopes=[SCOPE_MESSAGING])
    async with client_for(emu, token) as wa:
        with pytest.raises(PermanentError) as info:
            await wa.templates.list()
    assert info.value.info.missing_scope == SCOPE_MANAGEMENT
    assert SCOPE_MANAGEMENT in info.value.details
