"""The single-file HTML report: its content from records written by hand, and its rendering in a real
headless Chromium (the tables and every embedded chart as the browser sees them)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from contextlib import suppress
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bench.records.run_folder import RunFolder, create_run_folder
from bench.records.schema import DatabaseInfo
from bench.report.build import write_report
from bench.report.html import chart_caption, write_html_report
from tests.test_findings import make_point, make_run, write_standard_run

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_TIMEOUT_S = 120


class RenderedPage(HTMLParser):
    """What a test needs from a DOM: the summary tables' variant rows, every <img>'s attributes, <body>'s."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[dict[str, list[str]]] = []  # {"load": [...], "variants": [...]}
        self.images: list[dict[str, str | None]] = []
        self.body: dict[str, str | None] = {}
        self.broken_notes = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table" and attributes.get("class") == "summary":
            self.tables.append({"load": [attributes.get("data-load") or ""], "variants": []})
        elif tag == "tr" and "data-variant" in attributes and self.tables:
            self.tables[-1]["variants"].append(attributes["data-variant"] or "")
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "body":
            self.body = attributes
        elif tag == "p" and attributes.get("class") == "broken-note":
            self.broken_notes += 1


def dump_dom(page: Path) -> str:
    """The DOM of `page` after load, as headless Chromium rendered it; the browser is always stopped."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        command = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
            "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri(),
        ]  # fmt: skip
        # Its own session, so the launcher script, the browser and its helper processes go down together.
        browser = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            out, err = browser.communicate(timeout=BROWSER_TIMEOUT_S)
        finally:
            with suppress(ProcessLookupError):
                os.killpg(browser.pid, signal.SIGKILL)
            browser.communicate(timeout=30)
    assert browser.returncode == 0, f"chromium exited with {browser.returncode}: {err[-2000:]}"
    return out


def _draw(folder: RunFolder) -> list[Path]:
    return [path for path in write_report(folder) if path.suffix == ".png"]


def test_the_browser_shows_every_table_row_and_decodes_every_chart(tmp_path: Path) -> None:
    folder = write_standard_run(tmp_path)
    folder.write_point(make_point(40, "pg_sqla_async", 5, 900, 20, users=100))  # a second load
    charts = _draw(folder)
    assert len(charts) >= 3
    page = RenderedPage(dump_dom(write_html_report(folder, charts)))

    assert [table["load"] for table in page.tables] == [["50 users"], ["100 users"]]
    assert page.tables[0]["variants"] == [
        "memory", "pg_sqla_async", "pg_sqla_async", "pg_sqla_blocking", "pg_sqla_blocking", "pg_sqla_sync",
        "pg_sqla_sync",
    ]  # fmt: skip
    assert page.tables[1]["variants"] == ["pg_sqla_async"]
    assert len(page.images) == len(charts)
    widths = [int(image.get("data-natural-width") or 0) for image in page.images]
    assert all(width > 100 for width in widths), widths  # the load script ran and every PNG decoded
    assert page.body.get("data-images-broken") == "0"
    assert all((image.get("src") or "").startswith("data:image/png;base64,") for image in page.images)


def test_the_browser_check_catches_a_chart_that_does_not_decode(tmp_path: Path) -> None:
    folder = write_standard_run(tmp_path)
    good = _draw(folder)[0]
    corrupt = folder.report_dir / "pool_size_u999.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    page = RenderedPage(dump_dom(write_html_report(folder, [good, corrupt])))
    assert [int(image.get("data-natural-width") or 0) > 0 for image in page.images] == [True, False]
    assert page.body.get("data-images-broken") == "1"
    assert page.broken_notes == 1  # the reader is told, not left with an empty box


def test_page_is_self_contained_and_says_how_the_run_was_measured(tmp_path: Path) -> None:
    folder = write_standard_run(tmp_path)
    charts = _draw(folder)
    html = write_html_report(folder, charts).read_text(encoding="utf-8")
    # Nothing fetched from anywhere: no external scripts, styles, fonts or images.
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    for expected in (
        "Run r", "status-complete", "21 ok, 1 failed of 22 planned", "<code>read_heavy</code>", "closed model",
        "PostgreSQL 15.19", "postgresql://bench:***@127.0.0.1:5432/bench", "2 CPUs, Test CPU", "3.11.9",
        "<code>abc123</code>", "fastapi", "Not calibrated on this machine", "uvicorn exited during start-up",
        "generator-limited 3/3", "stalled 3/3", "Flags explained", "rate-not-reached", "Sweep configuration",
        "<code>pool_sizes</code>", "[2, 5]", "bench run --repeat 3",
    ):  # fmt: skip
        assert expected in html, expected
    # The sync variant's repeats disagree (CV 25%): "unstable" joins its row's flags.
    assert re.search(r'data-variant="pg_sqla_sync"><td><code>pg_sqla_sync</code>.*?>unstable</span>', html)
    # The stalled row shows no latency (a stall is not a fast point).
    stalled_row = re.search(r'<tr data-variant="pg_sqla_sync" class="stalled">(.*?)</tr>', html)
    assert stalled_row is not None and '<td class="num">–</td>' in stalled_row.group(1)
    assert html.count("<figcaption>") == len(charts)
    assert "Requests/s (top) and p99 latency (bottom) against pool_size, one panel per max_overflow; 50 users" in html


def test_every_text_is_escaped_and_passwords_never_reach_the_page(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "x")
    evil = "<script>alert(1)</script>"
    surrogate = DatabaseInfo(
        kind="mongodb", label=f"secantusdb {evil}", url="mongodb://u:***@127.0.0.1:27017", embedded=True,
        surrogate=True, source="pip", version="0.7", settings={},
    )  # fmt: skip
    run = make_run("x", databases={"mongodb": surrogate}, sweep={"scenario": "read_heavy", "note": evil})
    folder.write_run(run)
    error = f"cannot connect to postgresql://bench:hunter2@db/bench {evil}"
    folder.write_point(make_point(1, "pg_sqla_sync", 5, None, error=error))
    html = write_html_report(folder, [], [(f"Compare {evil}", "<p id='mine'>given markup</p>")]).read_text()
    assert evil not in html.replace("<p id='mine'>given markup</p>", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "hunter2" not in html and "postgresql://bench:***@db/bench" in html
    assert '<span class="surrogate">SURROGATE</span>' in html and "Measured on a stand-in server" in html
    assert "<h2>Compare &lt;script&gt;alert(1)&lt;/script&gt;</h2><p id='mine'>given markup</p>" in html
    assert "No point completed" in html


def test_the_page_is_written_atomically_in_place(tmp_path: Path) -> None:
    folder = write_standard_run(tmp_path)
    path = write_html_report(folder, [])
    assert path == folder.report_dir / "index.html"
    write_html_report(folder, [])  # a second report replaces the first
    assert sorted(p.name for p in folder.report_dir.iterdir()) == ["index.html"]  # no temporary file left


def test_chart_captions_come_from_the_chart_names() -> None:
    assert chart_caption(Path("variants_ps5_mo10_u50_rate400_t80.png")) == (
        "Every variant side by side at pool_size=5, max_overflow=10: requests/s and p99 latency; 400 requests/s "
        "on 50 connections, 80 threads for the sync variants. (variants_ps5_mo10_u50_rate400_t80.png)"
    )
    assert chart_caption(Path("why_psNone_moNone_u20.png")).startswith("Why: p99 wait for a pool connection")
    assert chart_caption(Path("compare_throughput.png")) == "compare_throughput.png"
