"""End to end: simulated users start conversations at a steady rate; time from the user's message to the reply
on their phone, through `waflow serve` (its own process) and the Cloud API emulator.

    python -m bench.e2e_latency [--rate 50] [--seconds 10] [--rounds 3] [--flow examples/demo_shop.yaml]

Per conversation: the emulator POSTs the user's signed webhook to `waflow serve` (signature, durable inbox,
200), the engine runs the flow's first step and writes the reply in the same transaction as the event's
`done`, the dispatcher claims it, passes the limiters and sends it to the emulator, which puts it on the
user's phone. Latency is measured from the *scheduled* start (open loop: a slow reply does not delay the next
user), with the emulator's status webhooks (sent / delivered / read) flowing at the same time. SQLite file,
one `waflow serve` process, default settings except the emulator URL. Goal: p95 ≤ 100 ms at 50 new
conversations/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from waflow.emulator import EmulatorConfig, run_emulator
from waflow.server.testing import ServeProcess, free_port, write_config

ROOT = Path(__file__).resolve().parents[1]
ECHO = """id: greet
start: hello
triggers:
  - any_first_message: true
nodes:
  hello:
    type: buttons
    text: "Hi {{ contact.name | default('there') }}! What would you like?"
    buttons:
      - {id: order, title: Order, next: done}
      - {id: help, title: Help, next: done}
  done:
    type: end
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux `/proc`): the server's cost, whatever else the
    machine runs meanwhile."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(emu, rate: float, seconds: float, tag: int) -> tuple[list[float], int]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    n = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    waiting: dict[int, tuple[Any, float]] = {}  # conversation → (user, scheduled start)

    async def conversation(i: int) -> None:
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        user = emu.user(f"44{tag}{i:08d}", name=f"User {i}")
        await user.send_text("hi", wait=False)
        waiting[i] = (user, scheduled)

    async def watch() -> None:
        # one poller for every conversation (1 ms): a sleeping poll loop per user (as `wait_for_received`
        # does, every 5 ms) costs this process — which also runs the emulator — ~10,000 wake-ups/s at 50/s
        deadline = start + seconds + 10
        while loop.time() < deadline and (waiting or len(latencies) < n):
            now = loop.time()
            for i, (user, scheduled) in list(waiting.items()):
                if user.received():
                    latencies.append(now - scheduled)
                    del waiting[i]
            if len(latencies) == n:
                return
            await asyncio.sleep(0.001)

    await asyncio.gather(watch(), *(conversation(i) for i in range(n)))
    return latencies, n - len(latencies)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="waflow-e2e-") as tmp:
        folder = Path(tmp)
        flows = folder / "flows"
        flows.mkdir()
        if args.flow:
            (flows / Path(args.flow).name).write_text(Path(args.flow).read_text())  # noqa: ASYNC240
        else:
            (flows / "greet.yaml").write_text(ECHO)
        emu_cfg = EmulatorConfig(app_secret="bench-secret", verify_token="vt", throughput_mps=args.throughput)
        async with run_emulator(emu_cfg) as emu:
            port = free_port()
            emu.set_callback(f"http://127.0.0.1:{port}/webhook")
            server = {"poll_interval_s": args.poll} if args.poll else None
            config = write_config(folder, emu, port=port, flows_dir=flows, server=server)
            serve = ServeProcess(config, port)
            await serve.start()
            pid = serve.proc.pid if serve.proc else 0
            print(
                f"waflow serve pid {pid} on {serve.url}; emulator {emu.base_url}; "
                f"{args.rate:g} new conversations/s for {args.seconds:g} s, {args.rounds} rounds"
            )
            rounds: list[tuple[float, float, float, float]] = []
            try:
                for r in range(args.rounds):
                    cpu0 = cpu_seconds(pid)
                    lat, failed = await one_round(emu, args.rate, args.seconds, r)
                    await asyncio.sleep(1.0)  # the round's status webhooks land (their cost is the round's)
                    cpu_ms = (cpu_seconds(pid) - cpu0) / max(1, len(lat)) * 1000
                    p50, p95, p99 = (pct(lat, q) * 1000 for q in (0.5, 0.95, 0.99)) if lat else (0, 0, 0)
                    rounds.append((p50, p95, p99, cpu_ms))
                    worst = max(lat, default=0) * 1000
                    print(
                        f"round {r + 1}: {len(lat)} replies, {failed} missing; "
                        f"p50 {p50:.1f} ms  p95 {p95:.1f} ms  p99 {p99:.1f} ms  max {worst:.1f} ms; "
                        f"server CPU {cpu_ms:.2f} ms/conversation (load {os.getloadavg()[0]:.2f})"
                    )
                async with httpx.AsyncClient() as client:
                    metrics = (await client.get(f"{serve.url}/metrics")).text
            finally:
                await serve.stop()
        med = [statistics.median(r[i] for r in rounds) for i in range(4)]
        print(
            f"median of {len(rounds)} rounds: p50 {med[0]:.1f} ms  p95 {med[1]:.1f} ms  p99 {med[2]:.1f} ms  "
            f"server CPU {med[3]:.2f} ms/conversation "
            f"(goal p95 ≤ 100 ms) — {'MET' if med[1] <= 100 else 'NOT MET'}"
        )
        for line in metrics.splitlines():
            if line.startswith(("waflow_engine_events_processed_total", "waflow_messages{")):
                print("  " + line)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.e2e_latency", description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=50.0, help="new conversations per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--throughput", type=float, default=80.0, help="the number's messages/s (emulator and waflow)")
    p.add_argument("--poll", type=float, default=None, help="[server] poll_interval_s (default: the setting's)")
    p.add_argument("--flow", default=None, help="a flow file to use instead of the built-in greeting")
    return p.parse_args()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(parse()))
