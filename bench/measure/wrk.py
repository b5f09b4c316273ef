"""wrk, the C load generator, as a yardstick for our Locust generator (`bench calibrate`).

wrk keeps `connections` requests in flight (closed loop, like Locust users) and costs a fraction of Locust's CPU
per request, so comparing the two at the same connection count shows what the generator itself costs. A Lua
script replays read_heavy's mix (90% GET /items/{id} over the seeded ids, 10% GET /items pages) and prints its
figures as one JSON line. With a rate, each connection pauses on average connections/rate between requests
(wrk's `delay`, drawn uniformly so connections do not fire in lockstep): a paced closed loop that approximates
the rate while the server keeps up; unlike our open model, wrk (not wrk2) does not correct latency for
coordinated omission.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.records.errors import BenchError
from bench.system.processes import child_environment, log_tail, start_child, stop_child

_RESULT_MARK = "BENCH_WRK_JSON "
_SCRIPT = """
math.randomseed(os.time())
local rows = {rows}
local delay_ms = {delay_ms}
local list_share = {list_share}
request = function()
  if math.random() >= list_share then
    return wrk.format("GET", "/items/" .. math.random(rows))
  end
  local offset = math.random(0, math.max(0, math.min(rows - 20, 1000)))
  return wrk.format("GET", "/items?limit=20&offset=" .. offset)
end
if delay_ms > 0 then
  -- Uniform in [0, 2 x delay]: the same mean pace, but connections drift apart instead of firing in lockstep
  -- bursts of `connections` requests (which a fixed delay from a common start produces).
  delay = function() return math.random(0, 2 * delay_ms) end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %f}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_p999: float
    latency_ms_max: float
    cpu_s: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def lua_script(dataset_rows: int, connections: int, rate: float | None, *, list_share: float = 0.1) -> str:
    """read_heavy's mix by default; list_share=0 sends only GET /items/{id} (what a yardstick serves)."""
    delay_ms = math.floor(connections * 1000 / rate) if rate else 0
    return _SCRIPT.format(rows=dataset_rows, delay_ms=delay_ms, mark=_RESULT_MARK, list_share=list_share)


def run_wrk(
    target_url: str,
    *,
    connections: int,
    duration_s: float,
    dataset_rows: int,
    work_dir: Path,
    rate: float | None = None,
    cpus: list[int] | None = None,
    list_share: float = 0.1,
) -> WrkResult:
    """Run wrk with one thread (like one Locust process) and `connections` connections; raises BenchError."""
    executable = wrk_path()
    if executable is None:
        raise BenchError("wrk is not installed (Debian: apt install wrk); it is only needed for comparisons")
    work_dir.mkdir(parents=True, exist_ok=True)
    script = work_dir / "read_heavy.lua"
    script.write_text(lua_script(dataset_rows, connections, rate, list_share=list_share), encoding="utf-8")
    log_path = work_dir / "wrk.log"
    log_path.unlink(missing_ok=True)  # start_child appends; one log per run keeps the result line unambiguous
    argv = [
        executable, "--threads", "1", "--connections", str(connections),
        "--duration", f"{math.ceil(duration_s)}s", "--timeout", "60s",
        "--script", str(script), target_url,
    ]  # fmt: skip
    cpu_before = _children_cpu_s()
    process = start_child(argv, env=child_environment({}), log_path=log_path, cpus=cpus)
    try:
        process.wait(timeout=duration_s + 60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not stop within {duration_s + 60:.0f} s") from None
    finally:
        stop_child(process)
    cpu_s = _children_cpu_s() - cpu_before
    return parse_wrk_output(log_path.read_text(encoding="utf-8", errors="replace"), cpu_s, log_path)


def parse_wrk_output(output: str, cpu_s: float, log_path: Path) -> WrkResult:
    line = next((line for line in output.splitlines() if line.startswith(_RESULT_MARK)), None)
    if line is None:
        raise BenchError(f"wrk printed no result: {log_tail(log_path) or 'no output'}")
    data = json.loads(line.removeprefix(_RESULT_MARK))
    seconds = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        errors=data["errors"],
        seconds=seconds,
        requests_per_s=data["requests"] / seconds if seconds else 0.0,
        latency_ms_mean=data["mean_us"] / 1000,
        latency_ms_p50=data["p50_us"] / 1000,
        latency_ms_p90=data["p90_us"] / 1000,
        latency_ms_p99=data["p99_us"] / 1000,
        latency_ms_p999=data["p999_us"] / 1000,
        latency_ms_max=data["max_us"] / 1000,
        cpu_s=cpu_s,
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
