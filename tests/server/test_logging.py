"""Secrets never reach the logs: the redacting filter on every record, and a whole stack run with JSON logs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from waflow.demo import Phone, local_stack
from waflow.logging import configure_logging, log_context
from waflow.server.parts import build_parts


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_redacting_filter_covers_messages_args_extras_and_tracebacks(captured: io.StringIO) -> None:
    configure_logging("json", "debug", secrets=["s3cr3t-app-secret"], stream=captured)
    log = logging.getLogger("waflow.test")
    with log_context(outbox_id=7):
        log.info("calling with Authorization: Bearer EAAGm0PX4ZCps %s", "s3cr3t-app-secret", extra={"wamid": "w.1"})
        log.warning("url https://x/?access_token=EAAtoken123&hub.verify_token=vt-value-1",
                    extra={"k": "s3cr3t-app-secret"})
        try:
            raise RuntimeError("failed with s3cr3t-app-secret")
        except RuntimeError:
            log.exception("boom")
    text = captured.getvalue()
    for secret in ("s3cr3t-app-secret", "EAAGm0PX4ZCps", "EAAtoken123", "vt-value-1"):
        assert secret not in text
    first = orjson.loads(text.splitlines()[0])
    assert first["outbox_id"] == 7 and first["wamid"] == "w.1" and "Bearer ***" in first["msg"]


async def test_a_stack_run_logs_no_secret(captured: io.StringIO) -> None:
    async with local_stack(settings={"log_format": "json"}) as stack:
        settings = stack.settings
        configure_logging("json", "debug", secrets=[*settings.secret_values(), stack.api_key], stream=captured)
        flow = {"id": "hi", "start": "a", "triggers": [{"any_first_message": True}],
                "nodes": {"a": {"type": "message", "text": "hello", "next": "b"}, "b": {"type": "end"}}}
        assert (await stack.api.post("/api/v1/flows", json=flow)).status_code == 201
        new_token = stack.emulator.rotate_token()  # the old one now gets 401/190: the client re-reads the file
        token_file = Path(settings.numbers[0].token.get_secret_value().removeprefix("file:"))
        token_file.write_text(new_token)  # noqa: ASYNC240
        phone = Phone(stack.emulator.user("34600999888", name="Eve"))
        await phone.say("hi")
        await phone.next(timeout=10)
        await stack.api.get("/api/v1/messages", headers={"Authorization": "Bearer wrong-key-but-logged?"})
        logging.getLogger("waflow.test").error("config dump %s", settings.numbers[0].app_secret.get_secret_value())
        secrets = [*settings.secret_values(), stack.api_key, new_token, *stack.emulator.config.access_tokens]
    text = captured.getvalue()
    assert text, "the run should have logged something"
    for secret in secrets:
        assert secret not in text, f"a secret leaked into the logs: {secret[:4]}…"


def test_parts_repr_hides_secrets(tmp_path: Path) -> None:
    from waflow.config import Settings

    s = Settings(numbers=[{"phone_number_id": "1", "token": "EAA-secret-token", "app_secret": "app-secret-x",
                           "verify_token": "verify-x"}], store_url=str(tmp_path / "x.db"))
    parts = build_parts(s)
    text = repr(parts)
    for secret in ("EAA-secret-token", "app-secret-x", "verify-x"):
        assert secret not in text


async def test_debug_logs_carry_no_stored_values(captured: io.StringIO, tmp_path: Path) -> None:
    """At log level debug the drivers' statement logs (with their bound values: message texts, phone numbers)
    stay out; waflow's own lines are what debug shows."""
    from waflow.store import Store

    configure_logging("json", "debug", stream=captured)
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'debug.db'}")
    try:
        await store.upgrade()
        async with store.begin() as conn:
            await store.dead_letters.add(conn, reason="my order code is zq-7731", body=b"{", headers={})
    finally:
        await store.close()
    assert "zq-7731" not in captured.getvalue()
