"""Simulated readers for the demo: some of the emails in the outbox get opened and clicked.

Nobody reads the demo's ``.eml`` files, so without this the playbooks would wait
forever for engagement. A thread of ``abm demo`` picks up each new email in the outbox
and, a few seconds to a minute later, fetches its tracking pixel (about half of them)
and follows one of its tracked links (about one in five) over HTTP, exactly as a mail
client would: the events go through the product's own tracking endpoints, the event
queue, the drain, the scores and the playbooks' ``wait_until`` steps.
"""

from __future__ import annotations

import email
import email.policy
import heapq
import html
import random
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

_URL = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def tracking_urls(eml: bytes, base_url: str) -> tuple[list[str], list[str]]:
    """(open pixel URLs, click URLs) of one email that point at ``base_url``."""
    message = email.message_from_bytes(eml, policy=email.policy.default)
    part = message.get_body(preferencelist=("html",))
    body = part.get_content() if part is not None else ""
    urls = [html.unescape(u) for u in _URL.findall(body)]
    opens = [u for u in urls if u.startswith(f"{base_url}/t/o/")]
    clicks = [u for u in urls if u.startswith(f"{base_url}/t/c/")]
    return opens, clicks


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a click's destination is example.com: not followed
        return None


class Readers(threading.Thread):
    def __init__(self, outbox: Path, base_url: str, seed: int = 7, open_rate: float = 0.5,
                 click_rate: float = 0.2, max_delay: float = 45.0):
        super().__init__(name="demo-readers", daemon=True)
        self.outbox, self.base_url = Path(outbox), base_url.rstrip("/")
        self.rng = random.Random(seed)
        self.open_rate, self.click_rate, self.max_delay = open_rate, click_rate, max_delay
        self.seen: set[str] = set()
        self.due: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.opened = self.clicked = 0
        self._http = urllib.request.build_opener(_NoRedirect)

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.wait(2.0):
            try:
                self._scan()
                self._fire()
            except OSError:
                continue

    def _scan(self) -> None:
        if not self.outbox.is_dir():
            return
        for path in self.outbox.glob("*.eml"):
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            opens, clicks = tracking_urls(path.read_bytes(), self.base_url)
            if opens and self.rng.random() < self.open_rate:
                at = time.monotonic() + self.rng.uniform(3, self.max_delay)
                heapq.heappush(self.due, (at, opens[0]))
                if clicks and self.rng.random() < self.click_rate / self.open_rate:
                    heapq.heappush(self.due, (at + self.rng.uniform(2, 20), self.rng.choice(clicks)))

    def _fire(self) -> None:
        now = time.monotonic()
        while self.due and self.due[0][0] <= now and not self.stopping.is_set():
            _, url = heapq.heappop(self.due)
            try:
                self._http.open(url, timeout=5).close()
            except urllib.error.HTTPError as exc:
                if exc.code not in (301, 302, 303, 307, 308):
                    continue
            except OSError:
                continue
            if "/t/o/" in url:
                self.opened += 1
            else:
                self.clicked += 1
