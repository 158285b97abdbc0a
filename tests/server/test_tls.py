"""HTTPS: `waflow serve` speaks TLS with `--tls-certfile` / `--tls-keyfile` (or `[server] tls_*`), checked with a
throwaway CA (trustme) over a real socket; `require_https` refuses what did not arrive over TLS — here, or at a
trusted proxy that says so; a certificate or key that cannot be used stops the start with a line naming the
setting, never a traceback (and never a password prompt)."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from waflow.config import ConfigError, load_settings
from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from waflow.server.testing import API_KEY, ServeProcess, free_port, serve_in_process, write_config

from .intake_helpers import client, message_body, signed

WAFLOW = str(Path(sys.executable).with_name("waflow"))


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with run_emulator(EmulatorConfig(app_secret="tls-app-secret", verify_token="tls-vt")) as handle:
        yield handle


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def pem_pair(ca: trustme.CA, folder: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = folder / "server.pem", folder / "server.key"
    for i, blob in enumerate(cert.cert_chain_pems):
        with certfile.open("ab" if i else "wb") as fh:
            fh.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(keyfile))
    return certfile, keyfile


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


async def test_serve_speaks_https_from_the_cli_flags_and_refuses_plain_http(
    tmp_path: Path, emu: EmulatorHandle, ca: trustme.CA
) -> None:
    certfile, keyfile = pem_pair(ca, tmp_path)
    port = free_port()
    config = write_config(tmp_path, emu, port=port, server={"require_https": True, "run_engine": False,
                                                            "run_dispatcher": False})
    serve = ServeProcess(config, port, verify=trusting(ca), command=[
        WAFLOW, "serve", "-c", str(config), "--tls-certfile", str(certfile), "--tls-keyfile", str(keyfile)])
    await serve.start()  # /readyz over HTTPS, the CA's certificate verified
    try:
        async with client(serve.url, verify=trusting(ca)) as c:
            r = await c.get("/healthz")
            assert r.status_code == 200
            assert r.headers["strict-transport-security"].startswith("max-age=")
            assert (await c.get("/api/v1/flows", headers={"Authorization": f"Bearer {API_KEY}"})).status_code == 200
            _, body = message_body(emu)
            assert (await c.post("/webhook", content=body, headers=signed(emu, body))).status_code == 200
        # plain HTTP to the TLS port: no HTTP answer at all
        async with httpx.AsyncClient(timeout=5) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{port}/healthz")
        # a client that does not know the CA does not get through either
        async with httpx.AsyncClient(timeout=5) as stranger:
            with pytest.raises(httpx.ConnectError):
                await stranger.get(f"{serve.url}/healthz")
    finally:
        assert await serve.stop() == 0, serve.log.read_text()[-3000:]


async def test_require_https_behind_a_trusted_proxy(tmp_path: Path, emu: EmulatorHandle) -> None:
    path = write_config(tmp_path, emu, port=0, server={"require_https": True, "trusted_proxies": ["127.0.0.61"],
                                                       "run_engine": False, "run_dispatcher": False})
    settings = load_settings(path)
    async with serve_in_process(settings) as (url, _app), \
            client(url, "127.0.0.61") as proxy, client(url, "127.0.0.62") as direct:
        tls_at_proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
        r = await proxy.get("/healthz", headers=tls_at_proxy)
        assert r.status_code == 200 and "strict-transport-security" in r.headers
        _, body = message_body(emu)
        r = await proxy.post("/webhook", content=body, headers={**signed(emu, body), **tls_at_proxy})
        assert r.status_code == 200

        for who, headers in ((proxy, {"X-Forwarded-Proto": "http"}), (proxy, {}),
                             (direct, {"X-Forwarded-Proto": "https"}), (direct, {})):
            r = await who.get("/healthz", headers=headers)
            assert r.status_code == 403, headers
            assert r.json()["error"] == "https_required"
            assert "HTTPS required" in r.json()["message"]
        r = await direct.post("/webhook", content=body, headers={**signed(emu, body), "X-Forwarded-Proto": "https"})
        assert r.status_code == 403 and r.text.startswith("HTTPS required")


def test_require_https_without_tls_or_a_proxy_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_minimal(tmp_path, "require_https = true\n"))
    assert "server.require_https: needs server.tls_certfile" in err.value.render()


def _minimal(folder: Path, server: str) -> Path:
    path = folder / "waflow.toml"
    path.write_text(f'[server]\n{server}\n[[numbers]]\nphone_number_id = "1"\ntoken = "t"\n'
                    'app_secret = "s"\nverify_token = "v"\n')
    return path


def _problems(tmp_path: Path, server: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(_minimal(tmp_path, server))
    text = err.value.render()
    assert "Traceback" not in text
    return text


def test_unusable_certificates_and_keys_are_named(tmp_path: Path, ca: trustme.CA) -> None:
    certfile, keyfile = pem_pair(ca, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = pem_pair(ca, other)
    assert "server.tls_certfile: file" in _problems(tmp_path, f'tls_certfile = "{tmp_path}/missing.pem"\n')
    assert "does not belong to the certificate" in _problems(
        tmp_path, f'tls_certfile = "{certfile}"\ntls_keyfile = "{other_key}"\n')
    assert "server.tls_certfile: is required" in _problems(tmp_path, f'tls_keyfile = "{keyfile}"\n')
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert "holds no PEM certificate" in _problems(tmp_path, f'tls_certfile = "{garbage}"\ntls_keyfile = "{keyfile}"\n')

    # an encrypted key: an error naming the password setting without it (never a prompt), loads with it
    key = serialization.load_pem_private_key(keyfile.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"key-password-123")))
    text = _problems(tmp_path, f'tls_certfile = "{certfile}"\ntls_keyfile = "{locked}"\n')
    assert "server.tls_keyfile_password: is not set" in text
    text = _problems(tmp_path, f'tls_certfile = "{certfile}"\ntls_keyfile = "{locked}"\n'
                               'tls_keyfile_password = "wrong-password"\n')
    assert "server.tls_keyfile_password: is wrong" in text and "wrong-password" not in text
    settings = load_settings(_minimal(tmp_path, f'tls_certfile = "{certfile}"\ntls_keyfile = "{locked}"\n'
                                                'tls_keyfile_password = "key-password-123"\n'))
    assert settings.server.tls_context() is not None
    assert "key-password-123" in settings.secret_values()


def test_serve_stops_with_a_clear_line_for_a_missing_certificate(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = _minimal(tmp_path / "a", "")
    with_tls = _minimal(tmp_path / "b", 'tls_certfile = "/nope.pem"')
    for argv in ([WAFLOW, "serve", "-c", str(plain), "--tls-certfile", str(tmp_path / "nope.pem")],
                 [sys.executable, "-m", "waflow.server", "-c", str(with_tls)]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 2, done.stderr
        assert "tls_certfile: file" in done.stderr and "unreadable" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
