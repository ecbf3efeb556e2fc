"""Finding 8 of issue 13 (lockout): ten failed logins locked any account, admins
included, for 15 minutes, and parallel guesses slipped past the counter. Now delays grow
per account-and-address, per address and per account, the owner elsewhere (or on a
browser that logged in before) is not held, and the count is atomic."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests

from abm.web.login_throttle import DEVICE_COOKIE, POLICIES, Policy


class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds: float):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(pages):
    c = Clock()
    pages.config["ABM_CLOCK"] = c
    return c


def _client(pages, address: str):
    client = pages.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _try(client, email: str, password: str):
    return client.post("/login", data={"email": email, "password": password})


def test_delays_grow_and_are_capped_and_the_right_password_works_after_the_wait(pages, quick_user, clock):
    admin = quick_user("admin")
    guesser = _client(pages, "10.0.0.1")
    free = POLICIES["pair"].free
    for _ in range(free + 1):
        assert _try(guesser, admin.email, "wrong-password").status_code == 401
    waits = []
    for _ in range(14):
        blocked = _try(guesser, admin.email, "password123")
        assert blocked.status_code == 429 and "Too many failed attempts" in blocked.get_data(as_text=True)
        waits.append(int(blocked.headers["Retry-After"]))
        clock.advance(waits[-1])
        assert _try(guesser, admin.email, "wrong-password").status_code == 401
    assert waits[:5] == [1, 2, 4, 8, 16]
    assert max(waits) == POLICIES["pair"].cap  # capped: never a lock
    clock.advance(POLICIES["pair"].cap)
    assert _try(guesser, admin.email, "password123").status_code == 302


def test_the_owner_on_another_address_is_not_slowed(pages, quick_user, clock):
    admin = quick_user("admin")
    guesser = _client(pages, "10.0.0.1")
    for _ in range(POLICIES["pair"].free + 3):
        _try(guesser, admin.email, "wrong-password")
    assert _try(guesser, admin.email, "password123").status_code == 429
    assert _try(_client(pages, "192.0.2.7"), admin.email, "password123").status_code == 302


def test_a_guess_spread_over_addresses_holds_new_browsers_but_not_the_owners(pages, quick_user, clock):
    owner = quick_user("manager")
    laptop = _client(pages, "192.0.2.7")
    assert _try(laptop, owner.email, "password123").status_code == 302
    assert laptop.get_cookie(DEVICE_COOKIE) is not None
    laptop.post("/logout")
    answers = [_try(_client(pages, f"10.1.0.{i}"), owner.email, "wrong-password").status_code for i in range(14)]
    assert answers[:POLICIES["email"].free + 1] == [401] * (POLICIES["email"].free + 1) and 429 in answers
    # a new browser, even with the right password, waits; the owner's own browser does not
    assert _try(_client(pages, "198.51.100.9"), owner.email, "password123").status_code == 429
    laptop.environ_base["REMOTE_ADDR"] = "203.0.113.5"  # the owner's laptop, on the road
    assert _try(laptop, owner.email, "password123").status_code == 302


def test_many_emails_from_one_address_slow_that_address(pages, quick_user, clock):
    pages.config["LOGIN_THROTTLE"] = {**POLICIES, "address": Policy(free=3, base=1, cap=300)}
    user = quick_user("admin")
    client = _client(pages, "10.0.0.9")
    for i in range(4):
        assert _try(client, f"guess{i}@example.com", "password123").status_code == 401
    assert _try(client, user.email, "password123").status_code == 429
    assert _try(_client(pages, "10.0.0.10"), user.email, "password123").status_code == 302


def test_parallel_guesses_cannot_slip_past_the_counter(live_server, make_live_user):
    """Thirty wrong passwords for one account sent at once: only the free attempts (and
    the one that starts the delay) are checked; every other one waits."""
    user = make_live_user("admin")
    sessions = []
    for _ in range(30):
        s = requests.Session()
        form = s.get(live_server.url + "/login", timeout=10).text
        sessions.append((s, re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)))
    start = threading.Barrier(len(sessions))
    codes: list[int] = []

    def guess(session, token):
        start.wait()
        resp = session.post(live_server.url + "/login", timeout=30, allow_redirects=False,
                            data={"csrf_token": token, "email": user.email, "password": "wrong-password"})
        codes.append(resp.status_code)

    threads = [threading.Thread(target=guess, args=pair) for pair in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(set(codes)) == [401, 429]
    assert codes.count(401) == POLICIES["pair"].free + 1, codes
