"""`waflow worker` is observable: with `[server] worker_port` it serves /healthz, /readyz and /metrics (a real
process, its own port), and SIGTERM still stops it gracefully (exit 0)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from waflow.emulator import EmulatorConfig, run_emulator
from waflow.server.testing import API_KEY, ServeProcess, free_port, write_config


async def test_a_worker_serves_health_readiness_and_metrics(tmp_path: Path) -> None:
    async with run_emulator(EmulatorConfig(app_secret="worker-secret", verify_token="vt")) as emu:
        serve_port, worker_port = free_port(), free_port()
        config = write_config(tmp_path, emu, port=serve_port, server={"worker_port": worker_port})
        command = [sys.executable, "-c", "from waflow.cli import main; main()", "worker", "-c", str(config)]
        worker = ServeProcess(config, worker_port, command=command, log=tmp_path / "worker.log")
        await worker.start()  # waits for /readyz on the worker's port
        try:
            async with httpx.AsyncClient(base_url=worker.url, timeout=5) as c:
                assert (await c.get("/healthz")).status_code == 200
                ready = (await c.get("/readyz")).json()
                assert ready["ready"] is True and ready["checks"]["database"] == "ok"
                assert "rate_limiter" in ready["checks"], "the worker's dispatchers are part of its readiness"
                metrics = await c.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
                assert metrics.status_code == 200 and "waflow_outbox_limiter_up" in metrics.text
                assert (await c.get("/api/v1/messages")).status_code == 404, "no admin API on a worker"
        finally:
            worker.terminate()
            rc = await worker.wait(30)
        assert rc == 0, worker.log.read_text()[-2000:]
