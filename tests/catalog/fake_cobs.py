"""A fake COBS comet list on 127.0.0.1, answering in the recorded format, page by page.

`FakeCobs().start()`; its `url` is what COBS_API_URL would be. `scenario` picks the
answers: "pages" (3 pages: empty magnitudes, odd dates, a bad object, one comet too
faint), "flaky" (a 503, then the pages), "gone" (404), "html" (a non-JSON 200), "slow".
Every request is recorded in `requests` (the query, as a dict).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SIGNATURE = {"version": "1.3", "source": "COBS Comet List API"}


def comet(cid: int, name: str, fullname: str, mag: str, **more) -> dict:
    """An object as COBS writes it (version 1.3)."""
    return {
        "id": cid, "type": name[-1] if name[0].isdigit() else name[0], "name": name,
        "fullname": fullname, "mpc_name": name.replace(" ", "").replace("/", ""),
        "icq_name": name.replace("/", "").replace(" ", ""), "component": None,
        "current_mag": mag, "perihelion_date": "2024-03-05 10:20", "perihelion_mag": "9.9",
        "peak_mag": "9.5", "peak_mag_date": "2024-03-20 00:00", "is_observed": True,
        "is_active": True, **more,
    }  # fmt: skip


PAGES = [
    [
        comet(1670, "C/2017 K2", "C/2017 K2 (PANSTARRS)", "14.7"),
        comet(421, "249P", "249P/LINEAR", "11.2", component="", is_observed=False),
        # No magnitudes known: "" everywhere.
        comet(
            1900,
            "C/2023 A3",
            "C/2023 A3 (Tsuchinshan-ATLAS)",
            "",
            perihelion_mag="",
            peak_mag="",
            peak_mag_date="",
        ),  # fmt: skip
    ],
    [
        # Odd dates: a date alone, seconds and a T, MySQL's zero date, an explicit zone.
        comet(
            12,
            "12P",
            "12P/Pons-Brooks",
            "4.5",
            perihelion_date="2024-04-21",
            peak_mag_date="2024-04-21T06:30:15",
        ),  # fmt: skip
        comet(
            13,
            "13P",
            "13P/Olbers",
            "7.0",
            perihelion_date="0000-00-00 00:00",
            peak_mag_date="2024-06-30 12:00:00+02:00",
        ),  # fmt: skip
        # A bad object: a magnitude that is not one.
        comet(99, "C/2099 Z9", "C/2099 Z9 (Broken)", "bright"),
    ],
    [
        comet(2001, "C/2024 G3", "C/2024 G3 (ATLAS)", "-3.1"),
        # Fainter than 15, though COBS's integer cur-mag=15 lets 15.x through: skipped.
        comet(2002, "C/2024 X1", "C/2024 X1 (Faint)", "15.4"),
    ],
]
#: What a run over PAGES with maxMagnitude 15 should count.
IMPORTED = 6
ERRORS = 1
SKIPPED = 1


def body(page: int, pages: list[list[dict]] | None = None, version: str = "1.3") -> dict:
    pages = PAGES if pages is None else pages
    objects = copy.deepcopy(pages[page - 1])
    return {
        "info": {
            "page": page,
            "pages": len(pages),
            "start": 1,
            "end": len(objects),
            "length": 5000,
            "count": sum(map(len, pages)),
        },  # fmt: skip
        "objects": objects,
        "signature": {**SIGNATURE, "version": version},
    }


class FakeCobs:
    def __init__(self) -> None:
        self.scenario = "pages"
        self.pages = PAGES
        self.version = "1.3"
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                with fake.lock:
                    fake.requests.append(query)
                    hits = len(fake.requests)
                status, kind, payload = fake.answer(int(query.get("page", "1")), hits)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/comet_list.api"

    def answer(self, page: int, hits: int) -> tuple[int, str, object]:
        json_type = "application/json"
        if self.scenario == "gone":
            return 404, "text/html", b"<h1>Not Found</h1>"
        if self.scenario == "html":
            return 200, "text/html", b"<html><body>Down for maintenance</body></html>"
        if self.scenario == "flaky" and hits == 1:
            return 503, "text/html", b"<h1>Service Unavailable</h1>"
        if self.scenario == "slow":
            time.sleep(1.0)
        return 200, json_type, body(page, self.pages, self.version)

    def reset(self, scenario: str = "pages") -> None:
        with self.lock:
            self.scenario = scenario
            self.pages = PAGES
            self.version = "1.3"
            self.requests.clear()

    def start(self) -> FakeCobs:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
