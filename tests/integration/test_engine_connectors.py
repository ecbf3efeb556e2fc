"""The engine's path through every connector type, against its fake provider.

For each type: a connector pointed at the fake, a playbook whose one step uses it,
activation, the dispatcher, an in-process RQ worker; then at the fake server each
touch arrived exactly once, every touch row is ``sent``, and running the dispatcher,
the recovery and a duplicate of every job again sends nothing more.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs

import pytest
from flask import request
from sqlalchemy import select

from abm.db import db
from abm.models import ConnectorConfig, Touch
from abm.services import connectors
from abm.services import playbooks as playbook_service
from connectors.base import hash_identifier
from tests.connectors.fakes.google_ads import FakeGoogleAds
from tests.connectors.fakes.hubspot import FakeHubSpot
from tests.connectors.fakes.linkedin import FakeLinkedIn
from tests.connectors.fakes.meta import FakeMeta
from tests.connectors.fakes.salesforce import FakeSalesforce
from tests.connectors.fakes.sendgrid import sendgrid_app
from tests.connectors.fakes.slack import slack_app
from tests.connectors.fakes.smtp_server import smtp_server
from tests.connectors.fakes.webhook_receiver import receiver_app
from tests.connectors.harness import serve
from tests.engine.conftest import make_account
from workers import dispatcher, enqueue

#: The engine's SQL is tested on both backends in tests/engine; here each connector runs
#: on one of them, half on each, to keep the module fast.
PG, LITE = "postgresql", "sqlite"

DOMAINS = ("alpha.example", "bravo.example", "charlie.example")
OWNER = "ae@vendor.com"

@dataclass
class Case:
    settings: dict
    step: str
    arrived: Callable[[], list[str]]
    expected: list[str]


def playbook(connector: str, step: str) -> str:
    return f"""
version: 1
key: via-{connector}
name: Through {connector}
audience:
  where: {{tier: [1]}}
steps:
  - id: only
{step}
"""


def emails() -> list[str]:
    return sorted(f"c0@{d}" for d in DOMAINS)


def hashed() -> list[str]:
    return sorted(hash_identifier(e) for e in emails())


EMAIL_STEP = """    email:
      connector: {name}
      to: {{roles: [decision_maker]}}
      subject: "Hello {{{{ account.name }}}}"
      body: "<p>Hi {{{{ contact.first_name }}}}</p>"
"""
AUDIENCE_STEP = """    audience:
      connector: {name}
      list: tier1-list
      action: add
"""


def smtp_case(stack: ExitStack) -> Case:
    fake = stack.enter_context(smtp_server())
    settings = {"host": fake.host, "port": fake.port, "security": "none", "from_email": "news@vendor.example",
                "timeout": 5}
    return Case(settings, EMAIL_STEP, lambda: sorted(r for m in fake.messages for r in m.rcpt_tos), emails())


def sendgrid_case(stack: ExitStack) -> Case:
    server = stack.enter_context(serve(sendgrid_app()))
    settings = {"api_key": "SG.good", "from_email": "news@vendor.example", "base_url": server.base_url,
                "timeout": 5}

    def arrived():
        return sorted(to["email"] for body in server.app.config["ACCEPTED"]
                      for p in body["personalizations"] for to in p["to"])
    return Case(settings, EMAIL_STEP, arrived, emails())


def linkedin_case(stack: ExitStack, list_type: str = "company") -> Case:
    fake = FakeLinkedIn(token="li-token")
    server = stack.enter_context(serve(fake.app))
    settings = {"access_token": "li-token", "ad_account_id": "5150", "base_url": server.base_url + "/rest",
                "list_type": list_type, "read_timeout": 5}
    kind = "companies" if list_type == "company" else "users"

    def arrived():
        bodies = [json.loads(r.body) for r in server.requests if r.path.endswith("/" + kind)]
        if kind == "companies":
            return sorted(e["companyWebsiteDomain"] for b in bodies for e in b["elements"])
        return sorted(e["userIds"][0]["idValue"] for b in bodies for e in b["elements"])
    return Case(settings, AUDIENCE_STEP, arrived, sorted(DOMAINS) if kind == "companies" else hashed())


def meta_case(stack: ExitStack) -> Case:
    fake = FakeMeta(token="meta-token")
    server = stack.enter_context(serve(fake.app))
    settings = {"access_token": "meta-token", "ad_account_id": "777", "base_url": server.base_url,
                "read_timeout": 5}

    def arrived():
        return sorted(d for r in server.requests if r.path.endswith("/users")
                      for d in json.loads(_form(r.body)["payload"])["data"])
    return Case(settings, AUDIENCE_STEP, arrived, hashed())


def _form(body: bytes) -> dict:
    return {k: v[0] for k, v in parse_qs(body.decode()).items()}


def google_ads_case(stack: ExitStack) -> Case:
    fake = FakeGoogleAds(token="ga-token", developer_token="dev-token")
    server = stack.enter_context(serve(fake.app))
    settings = {"access_token": "ga-token", "developer_token": "dev-token", "customer_id": "123-456-7890",
                "base_url": server.base_url, "read_timeout": 5}

    def arrived():
        return sorted(op["create"]["userIdentifiers"][0]["hashedEmail"] for r in server.requests
                      if r.path.endswith(":addOperations") for op in json.loads(r.body)["operations"])
    return Case(settings, AUDIENCE_STEP, arrived, hashed())


def slack_case(stack: ExitStack) -> Case:
    server = stack.enter_context(serve(slack_app()))
    settings = {"webhook_url": "https://hooks.slack.com/services/T000/B000/GOODTOKEN",
                "base_url": server.base_url, "timeout": 5}
    step = """    alert:
      connector: {name}
      to: owner
      message: "{{{{ account.domain }}}} is warming up"
"""
    return Case(settings, step, lambda: sorted(m["text"].split()[0] for m in server.app.config["POSTED"]),
                sorted(DOMAINS))


def webhook_case(stack: ExitStack) -> Case:
    secret = "shared-secret-0123456789"
    server = stack.enter_context(serve(receiver_app(secret)))
    settings = {"url": server.base_url + "/hooks/abm", "secret": secret, "timeout": 5}
    step = """    webhook:
      connector: {name}
      payload: {{domain: "{{{{ account.domain }}}}", event: entered}}
"""

    def arrived():
        return sorted(doc["payload"]["domain"] for doc in server.app.config["RECEIVED"])
    return Case(settings, step, arrived, sorted(DOMAINS))


TASK_STEP = """    task:
      connector: {name}
      to: owner
      title: "Call {{{{ account.name }}}}"
      due: 2d
"""


def hubspot_case(stack: ExitStack) -> Case:
    fake = FakeHubSpot(token="hs-token")
    for i, _ in enumerate(DOMAINS):
        fake.put("companies", f"90{i}", name=f"Company {i}")
    server = stack.enter_context(serve(fake.app))
    settings = {"access_token": "hs-token", "base_url": server.base_url, "read_timeout": 5}

    def arrived():
        assert {t["properties"].get("hubspot_owner_id") for t in fake.tasks} <= {"501"}
        return sorted(t["associations"][0]["to"]["id"] for t in fake.tasks)
    return Case(settings, TASK_STEP, arrived, ["900", "901", "902"])


def salesforce_case(stack: ExitStack) -> Case:
    fake = FakeSalesforce(token="sf-token")
    for i, _ in enumerate(DOMAINS):
        fake.put("Account", f"90{i}", Name=f"Company {i}")
    server = stack.enter_context(serve(fake.app))
    settings = {"access_token": "sf-token", "base_url": server.base_url, "read_timeout": 5}

    def arrived():
        assert {t.get("OwnerId") for t in fake.tasks} == {"005AE"}
        return sorted(t["WhatId"] for t in fake.tasks)
    return Case(settings, TASK_STEP, arrived, ["900", "901", "902"])


@contextmanager
def running(make: Callable[[ExitStack], Case]) -> Iterator[Case]:
    with ExitStack() as stack:
        yield make(stack)


def run_jobs(clock, worker) -> None:
    dispatcher.dispatch(now=clock())
    worker()


CASES = [
    pytest.param("smtp", smtp_case, PG, id="email-smtp"),
    pytest.param("sendgrid", sendgrid_case, LITE, id="email-sendgrid"),
    pytest.param("linkedin", linkedin_case, PG, id="audience-linkedin-companies"),
    pytest.param("linkedin", lambda s: linkedin_case(s, "user"), LITE, id="audience-linkedin-users"),
    pytest.param("meta", meta_case, PG, id="audience-meta"),
    pytest.param("google_ads", google_ads_case, LITE, id="audience-google-ads"),
    pytest.param("slack", slack_case, LITE, id="alert-slack"),
    pytest.param("webhook", webhook_case, PG, id="webhook"),
    pytest.param("hubspot", hubspot_case, PG, id="task-hubspot"),
    pytest.param("salesforce", salesforce_case, LITE, id="task-salesforce"),
]


@pytest.mark.parametrize(("type_name", "make", "backend"), CASES)
def test_each_touch_arrives_exactly_once(app, clock, worker, make_user, type_name, make):
    owner = make_user("ae", email=OWNER)
    name = f"via-{type_name.replace('_', '-')}"
    with running(make) as case:
        connectors.create({"type": type_name, "name": name, "settings": case.settings, "unit_cost": "0.25"})
        for i, domain in enumerate(DOMAINS):
            make_account(domain.split(".")[0].title(), domain=domain, owner=owner, crm_ids={name: f"90{i}"})
        make_account("Not Tier One", tier=2)
        playbook_service.apply(playbook(name, case.step.format(name=name)), f"{name}.yaml")
        assert playbook_service.activate(f"via-{name}", now=clock())["enrolled"] == len(DOMAINS)

        run_jobs(clock, worker)
        assert case.arrived() == case.expected
        rows = db.session.execute(select(Touch.status, Touch.connector, Touch.error)).all()
        assert [(r.status, r.connector) for r in rows] == [("sent", name)] * len(case.expected), rows

        # Again: the dispatcher, the lost-touch recovery, and a duplicate of every job.
        run_jobs(clock, worker)
        dispatcher.recover(now=clock())
        ids = db.session.execute(select(Touch.id)).scalars().all()
        enqueue.touches([(i, name) for i in ids])
        worker()
        assert case.arrived() == case.expected


@pytest.mark.parametrize("backend", [LITE])
def test_list_ids_are_kept_in_the_connector_state_even_when_send_raises(app, clock, worker):
    """LinkedIn answers 404 just after a list is created: the job raises (retryable), and
    the list id it learnt must be in the connector's state all the same."""
    fake = FakeLinkedIn(token="li-token", not_ready_calls=1)
    with serve(fake.app) as server:
        connectors.create({"type": "linkedin", "name": "li", "settings": {
            "access_token": "li-token", "ad_account_id": "5150", "base_url": server.base_url + "/rest",
            "read_timeout": 5}})
        make_account("Alpha", domain="alpha.example")
        playbook_service.apply(playbook("li", AUDIENCE_STEP.format(name="li")), "li.yaml")
        playbook_service.activate("via-li", now=clock())
        run_jobs(clock, worker)
        assert db.session.execute(select(Touch.status)).scalars().all() == ["queued"]  # released for a retry
        state = db.session.execute(select(ConnectorConfig.state).where(ConnectorConfig.name == "li")).scalar_one()
        assert state["linkedin"]["segments"]["COMPANY:tier1-list"]["id"] == next(iter(fake.segments))


@pytest.mark.parametrize("backend", [PG])
def test_the_configured_rate_limit_paces_the_jobs_of_a_connector(app, clock, worker):
    """A connector's configured rate limit (here 1 call a second) is what the touch jobs
    keep: each call takes a token from the connector's bucket in Redis."""
    secret = "shared-secret-0123456789"
    receiver = receiver_app(secret)
    arrivals: list[float] = []
    receiver.before_request(lambda: arrivals.append(time.monotonic()) if request.method == "POST" else None)
    with serve(receiver) as server:
        connectors.create({"type": "webhook", "name": "hook", "rate_limit": "1/1", "settings": {
            "url": server.base_url + "/hooks/abm", "secret": secret, "timeout": 5}})
        for domain in DOMAINS:
            make_account(domain.split(".")[0].title(), domain=domain)
        playbook_service.apply(playbook("hook", """    webhook:
      connector: hook
      payload: {domain: "{{ account.domain }}"}
"""), "hook.yaml")
        playbook_service.activate("via-hook", now=clock())
        dispatcher.dispatch(now=clock(), enqueue=False)
        ids = db.session.execute(select(Touch.id).order_by(Touch.id)).scalars().all()
        for touch_id in ids:  # one job per touch, all queued at once
            enqueue.touches([(touch_id, "hook")])
        worker()
        assert sorted(d["payload"]["domain"] for d in receiver.config["RECEIVED"]) == sorted(DOMAINS)
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert len(arrivals) == 3 and min(gaps) >= 0.7, gaps  # unpaced jobs come ~0.3 s apart
