"""How many messages per second the Cloud API client sustains against the emulator.

    python -m bench.client_throughput [--messages 4000] [--rounds 5] [--concurrency 64] [--in-process]

One client process sends text messages with at most `--concurrency` in flight, through
`CloudAPIClient.send(OutboundMessage)` (the outbox's path: local validation, orjson, one pooled
httpx client). The emulator runs in a separate process by default so that the figure is the
client's, not the two sharing one core; `--in-process` runs both in one event loop instead.
Each recipient is distinct so the emulator's pair-rate limit does not interfere, and its
throughput limit is lifted. Prints per-round figures and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from waflow.canonical import OutboundMessage
from waflow.cloudapi import CloudAPIClient, Timeouts


def _emulator_config() -> Any:
    from waflow.emulator import EmulatorConfig, StatusDelays

    # No webhooks (no callback URL) and no read receipts: measure the send path only.
    return EmulatorConfig(throughput_mps=1e9, pair_burst=10**6, enforce_window=False,
                          status_delays=StatusDelays(read=None))


def _serve_emulator(conn: Any) -> None:
    from waflow.emulator import run_emulator

    async def main() -> None:
        async with run_emulator(_emulator_config()) as emu:
            conn.send((emu.base_url, emu.config.phone_number_id, emu.config.access_token))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"

    asyncio.run(main())


@asynccontextmanager
async def emulator(in_process: bool) -> AsyncIterator[tuple[str, str, str]]:
    if in_process:
        from waflow.emulator import run_emulator

        async with run_emulator(_emulator_config()) as emu:
            yield emu.base_url, emu.config.phone_number_id, emu.config.access_token
        return
    parent, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(target=_serve_emulator, args=(child,), daemon=True)
    proc.start()
    try:
        info = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
        yield info
    finally:
        parent.send("stop")
        proc.join(5)
        if proc.is_alive():
            proc.terminate()


async def one_round(client: CloudAPIClient, messages: int, concurrency: int, offset: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < messages:
            i = next_index
            next_index += 1
            msg = OutboundMessage(to=f"34{600000000 + offset + i}", type="text", content={"body": f"bench {i}"})
            started = time.perf_counter()
            await client.send(msg, biz_opaque_callback_data=f"outbox:{offset + i}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return messages / (time.perf_counter() - started), latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=4000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--in-process", action="store_true", help="run the emulator in this process")
    args = parser.parse_args()

    async with emulator(args.in_process) as (base_url, phone_id, token), CloudAPIClient(
        phone_number_id=phone_id, token=token, base_url=base_url, max_connections=args.concurrency,
        timeouts=Timeouts(total=30),
    ) as client:
        await one_round(client, min(500, args.messages), args.concurrency, 10**8)  # warm-up: connections
        rates: list[float] = []
        for r in range(args.rounds):
            rate, latencies = await one_round(client, args.messages, args.concurrency, r * args.messages)
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99)] * 1000
            rates.append(rate)
            print(f"round {r + 1}: {rate:8.0f} msg/s   latency p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    where = "same process" if args.in_process else "separate process"
    print(f"median: {statistics.median(rates):.0f} msg/s  ({args.messages} messages x {args.rounds} rounds, "
          f"{args.concurrency} in flight, emulator in a {where})")


if __name__ == "__main__":
    asyncio.run(main())
