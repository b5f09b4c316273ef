"""The selftest's known-answer server: one FIFO queue before a fixed service time, over keep-alive HTTP/1.1.

`python -m bench.measure.selftest_target --port P --service-ms S` (127.0.0.1 only). GET /work is handed to a
single-thread executor, whose queue is FIFO, and the thread sleeps S with time.sleep (a nanosleep, precise to
tens of µs; asyncio's timers round to whole milliseconds), then the request is answered 200 "ok". So the server
is exactly one FIFO server with deterministic service, the queue queueing theory has answers for
(bench/measure/queueing.py). GET /health says it is up.

GET /stats reports the service times the server really had (count, mean, min, max in ms, and each one in the
order served), so predictions use them, not the S asked for. A request's service time is how long it occupied
the thread: from the moment the thread could take it up (when it was queued, or when the one before it was done,
whichever is later) until it was done. That counts the sleep's overshoot and the thread's hand-over between
requests, which on a busy machine (a thread waiting for a CPU) reach milliseconds and would otherwise be
mistaken for the load generator's error.

Plain asyncio, not FastAPI: every layer between the socket and the queue would add its own delays and make the
answer less exact. The event loop only parses and answers; the one thread only serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

HOST = "127.0.0.1"  # never another interface: it answers anyone, and it exists to be measured locally
MAX_HEAD_BYTES = 16_384


@dataclass
class Server:
    """The one server: the work done on the single thread, and what each request cost it (in service order)."""

    service_s: float
    free_since: float = 0.0  # perf_counter() when the thread finished its last request
    service_times_s: list[float] = field(default_factory=list)
    queued_at_epoch: list[float] = field(default_factory=list)  # when each request joined the queue, in order

    def serve(self, queued_at: float, queued_at_epoch: float) -> None:
        """On the worker thread (only ever one, so no lock): the service itself, and its true cost."""
        time.sleep(self.service_s)
        done = time.perf_counter()
        self.service_times_s.append(done - max(queued_at, self.free_since))
        self.queued_at_epoch.append(queued_at_epoch)
        self.free_since = done

    def stats(self) -> dict[str, object]:
        times = list(self.service_times_s)  # a copy: the thread may append while this reads
        if not times:
            return {"count": 0, "mean_ms": 0.0, "min_ms": 0.0, "max_ms": 0.0, "service_ms": []}
        return {
            "count": len(times),
            "mean_ms": math.fsum(times) / len(times) * 1000,
            "min_ms": min(times) * 1000,
            "max_ms": max(times) * 1000,
            "service_ms": [round(t * 1000, 4) for t in times],
            "queued_at": list(self.queued_at_epoch[: len(times)]),
        }


def response(status: str, body: bytes, content_type: str, keep_alive: bool) -> bytes:
    connection = b"" if keep_alive else b"Connection: close\r\n"
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode()
    return head + connection + b"\r\n" + body


class Target:
    def __init__(self, service_s: float) -> None:
        self.server = Server(service_s)
        # One thread: its work queue is the server's FIFO queue, in the order the loop parsed the requests.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="service")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one connection carries a user's every request
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, keep_alive, length = parse_head(head)
                if length:
                    await reader.readexactly(length)
                writer.write(await self.answer(method, path, keep_alive))
                await writer.drain()
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass  # the client went away, or sent something that is not HTTP: drop the connection
        finally:
            writer.close()

    async def answer(self, method: str, path: str, keep_alive: bool) -> bytes:
        if method == "GET" and path == "/work":
            queued_at, queued_at_epoch = time.perf_counter(), time.time()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, self.server.serve, queued_at, queued_at_epoch)
            return response("200 OK", b"ok", "text/plain", keep_alive)
        if method == "GET" and path == "/stats":
            return response("200 OK", json.dumps(self.server.stats()).encode(), "application/json", keep_alive)
        if method == "GET" and path == "/health":
            body = json.dumps({"status": "ok", "service_ms": self.server.service_s * 1000}).encode()
            return response("200 OK", body, "application/json", keep_alive)
        return response("404 Not Found", b"not found", "text/plain", keep_alive)


def parse_head(head: bytes) -> tuple[str, str, bool, int]:
    """Method, path (query dropped), whether the connection stays open, and the body's length."""
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    keep_alive = version.strip() == "HTTP/1.1" and headers.get("connection") != "close"
    return method, target.split("?", 1)[0], keep_alive, int(headers.get("content-length", "0"))


async def main(port: int, service_ms: float) -> None:
    target = Target(service_ms / 1000)
    server = await asyncio.start_server(target.handle, HOST, port, limit=MAX_HEAD_BYTES, backlog=1024)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # the harness stops its children with SIGTERM
        loop.add_signal_handler(sig, stopping.set)
    async with server:
        await stopping.wait()
    target.executor.shutdown(wait=False, cancel_futures=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--service-ms", type=float, required=True)
    args = parser.parse_args(argv)
    if not 0 < args.service_ms <= 10_000:
        parser.error("--service-ms must be above 0 and at most 10000")
    return args


if __name__ == "__main__":  # pragma: no cover - run as a child by bench/measure/selftest.py
    arguments = parse_args()
    asyncio.run(main(arguments.port, arguments.service_ms))
