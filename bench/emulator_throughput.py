"""How many sends per second the emulator accepts.

Starts `waflow emulator` (uvicorn + httptools + uvloop, no webhook callback, throughput limit lifted)
in a subprocess, then drives `POST /{phone}/messages` from several client processes, each an httpx
AsyncClient with many requests in flight, spreading recipients so the pair limit stays out of the
way. Prints accepted msgs/s per round and the median.

    python -m bench.emulator_throughput [--rounds 3] [--seconds 5] [--clients 2] [--concurrency 64] [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx

PHONE = "106540352242922"
TOKEN = "bench-token"
_RUN_CLI = "import sys; from waflow.cli import main; sys.argv[0] = 'waflow'; main()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(base: str, seconds: float, concurrency: int, offset: int) -> tuple[int, int]:
    ok = errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, limits=limits,
                                 timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal ok, errors
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                to = f"34{(offset * 1_000_000 + w * 10_000 + i) % 10**9:09d}"
                r = await client.post(f"/v23.0/{PHONE}/messages", json={
                    "messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "bench"}})
                if r.status_code == 200:
                    ok += 1
                else:
                    errors += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return ok, errors


async def _raw_load(base: str, seconds: float, concurrency: int, offset: int) -> tuple[int, int]:
    """Keep-alive HTTP/1.1 over bare asyncio streams: a client cheap enough that the server is what is measured."""
    host, port = base.removeprefix("http://").split(":")
    ok = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal ok, errors
        reader, writer = await asyncio.open_connection(host, int(port))
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            to = f"34{(offset * 1_000_000 + w * 10_000 + i) % 10**9:09d}"
            body = b'{"messaging_product":"whatsapp","to":"' + to.encode() + b'","type":"text","text":{"body":"b"}}'
            writer.write(b"POST /v23.0/%s/messages HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (PHONE.encode(), host.encode(), TOKEN.encode(), len(body), body))
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200"):
                ok += 1
            else:
                errors += 1
        writer.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return ok, errors


def _client_proc(base: str, seconds: float, concurrency: int, offset: int, raw: bool,
                 out: mp.Queue) -> None:  # type: ignore[type-arg]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    load = _raw_load if raw else _load
    out.put(asyncio.run(load(base, seconds, concurrency, offset)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per client process")
    parser.add_argument("--raw", action="store_true", help="bare-socket HTTP/1.1 client instead of httpx")
    args = parser.parse_args()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-c", _RUN_CLI, "emulator", "--port", str(port), "--token", TOKEN,
         "--throughput", "1000000"],
        stdout=subprocess.DEVNULL, env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/_emulator/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("emulator did not start")
        httpx.patch(f"{base}/_emulator/config", json={"pair_burst": 1000})
        rates = []
        for n in range(1, args.rounds + 1):
            out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
            procs = [
                mp.Process(target=_client_proc, args=(base, args.seconds, args.concurrency, k + n * 10, args.raw, out))
                for k in range(args.clients)
            ]
            for p in procs:
                p.start()
            results = [out.get() for _ in procs]
            for p in procs:
                p.join()
            ok = sum(r[0] for r in results)
            errors = sum(r[1] for r in results)
            rate = ok / args.seconds
            rates.append(rate)
            print(f"round {n}: {rate:8.0f} accepted msgs/s  ({ok} ok, {errors} errors, "
                  f"{args.clients}x{args.concurrency} in flight, {'raw sockets' if args.raw else 'httpx'})")
        print(f"median: {statistics.median(rates):.0f} accepted msgs/s over {args.rounds} rounds of {args.seconds}s "
              f"({os.cpu_count()} CPUs; emulator and load share them)")
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
