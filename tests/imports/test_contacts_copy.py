"""Contacts on PostgreSQL: batches of new addresses are COPYed into ``contacts``, others upserted.

The same files run on SQLite (one upsert per batch there): the outcome must not depend
on the way a batch took.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from abm.db import db
from abm.models import Account, Contact, Suppression
from abm.services.imports import cells, contacts, email_hash
from abm.services.imports.contacts import ContactImporter
from tests.imports.test_service import account, contact, run


def test_batches_of_new_stored_and_mixed_contacts(app):
    db.session.add(Suppression(email_hash=email_hash("gone@acme.com"), reason="erased"))
    db.session.commit()
    run("accounts", "Domain\nacme.com\nbeta.io\n")
    run("contacts", "Email,First Name,Title,Source\nold@acme.com,Old,CEO,event\nold2@beta.io,Old2,,\n")
    text = ("Email,First Name,Title,Company Domain,Campaign\n"
            # batch 1: new only (one suppressed, one free mail, one with an unknown account domain)
            'n1@acme.com,N1,,,Q3\ngone@acme.com,Gone,,,\nme@gmail.com,Me,,,\nx@else.org,X,,nowhere.org,\n'
            # batch 2: stored and new (one with a quote and a backslash in its address)
            'OLD@acme.com,,CTO,,Q4\n"o""ne\\il@beta.io",Quote,,,\nn2@acme.com,N2,,beta.io,\nn1@ACME.com,N1b,,,\n'
            # batch 3: new only, after a batch with stored addresses
            "n3@acme.com,N3,,,\nn4@beta.io,N4,,,\nn5@acme.com,N5,,,\nn6@acme.com,N6,,,\n"
            # batch 4: new only again
            "n7@acme.com,N7,,,\nold2@beta.io,,VP,,\n")
    report = run("contacts", text, batch_size=4)
    assert (report["rows"], report["created"], report["updated"], report["skipped"]) == (14, 10, 2, 2)
    assert report["unlinked"] == 2  # the free-mail address and the unknown account's
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(5, "account_domain")]
    skipped = {s["row"]: s["reason"] for s in report["skipped_rows"]}
    assert "suppression list" in skipped[3] and "last row wins" in skipped[9]
    acme, beta = account("acme.com").id, account("beta.io").id
    old = contact("old@acme.com")
    assert (old.first_name, old.title, old.account_id) == ("Old", "CTO", acme)
    assert old.attributes == {"source": "event", "campaign": "Q4"}
    assert contact("old2@beta.io").title == "VP" and contact("old2@beta.io").first_name == "Old2"
    assert (contact("n1@acme.com").first_name, contact("n1@acme.com").attributes) == ("N1b", {"campaign": "Q3"})
    assert contact("n2@acme.com").account_id == beta  # the account-domain column wins over the email's
    assert contact('o"ne\\il@beta.io').account_id == beta
    assert contact("me@gmail.com").account_id is None and contact("x@else.org").account_id is None
    assert [contact(f"n{i}@acme.com").account_id for i in (3, 5, 6, 7)] == [acme] * 4
    assert contact("n4@beta.io").account_id == beta
    assert db.session.execute(select(func.count()).select_from(Contact)).scalar() == 12
    assert db.session.execute(select(Contact).where(Contact.email == "gone@acme.com")).first() is None
    n3 = contact("n3@acme.com")
    assert (n3.attributes, n3.crm_ids, n3.created_at == n3.updated_at) == ({}, {}, True)


def test_a_contact_stored_by_another_writer_before_the_copy_is_upserted(app, backend, monkeypatch):
    if backend != "postgresql":
        pytest.skip("the COPY is PostgreSQL's")
    run("accounts", "Domain\nacme.com\n")
    copy_new = ContactImporter.copy_new
    others = []

    def store_one_first(self, rows, account_ids):
        if not others:  # another writer commits the address after the look-up, before the COPY
            with db.engine.begin() as conn:
                then = datetime(2020, 1, 1, tzinfo=UTC)
                conn.execute(Contact.__table__.insert().values(
                    email="b@acme.com", title="Buyer", attributes={"from": "crm"}, crm_ids={},
                    created_at=then, updated_at=then))
            others.append("b@acme.com")
        return copy_new(self, rows, account_ids)

    monkeypatch.setattr(ContactImporter, "copy_new", store_one_first)
    report = run("contacts", "Email,First Name,Campaign\na@acme.com,A,Q1\nb@acme.com,B,Q1\nc@acme.com,C,\n")
    assert others and (report["created"], report["updated"], report["skipped"], report["rejected"]) == (2, 1, 0, 0)
    b = contact("b@acme.com")
    assert (b.first_name, b.title, b.account_id) == ("B", "Buyer", account("acme.com").id)
    assert b.attributes == {"from": "crm", "campaign": "Q1"}
    assert db.session.execute(select(func.count()).select_from(Contact)).scalar() == 3
    assert contact("a@acme.com").account_id == contact("c@acme.com").account_id == account("acme.com").id


def test_an_account_deleted_after_the_look_up_leaves_its_contact_unlinked(app, backend, monkeypatch):
    if backend != "postgresql":
        pytest.skip("the COPY is PostgreSQL's")
    run("accounts", "Domain\nacme.com\ngone.io\n")
    copy_new = ContactImporter.copy_new

    def delete_first(self, rows, account_ids):
        assert "gone.io" in account_ids  # looked up before it went
        with db.engine.begin() as conn:
            conn.execute(Account.__table__.delete().where(Account.domain == "gone.io"))
        monkeypatch.setattr(ContactImporter, "copy_new", copy_new)
        return copy_new(self, rows, account_ids)

    monkeypatch.setattr(ContactImporter, "copy_new", delete_first)
    report = run("contacts", "Email,Company Domain\na@gone.io,gone.io\nb@acme.com,\n")
    assert (report["created"], report["rejected"], report["unlinked"]) == (2, 0, 1)
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(2, "account_domain")]
    assert contact("a@gone.io").account_id is None and contact("b@acme.com").account_id == account("acme.com").id


def test_a_batch_is_copied_in_parts_and_each_part_stands_alone(app, backend, monkeypatch):
    if backend != "postgresql":
        pytest.skip("the COPY is PostgreSQL's")
    monkeypatch.setattr(contacts, "COPY_PART_MIN", 2)  # a batch of 6 goes in two parts of 3, at once
    run("accounts", "Domain\nacme.com\n")
    run("contacts", "Email,First Name\nstored@acme.com,Stored\n")
    report = run("contacts", "Email,First Name\na@acme.com,A\nb@acme.com,B\nc@acme.com,C\n"
                             "d@acme.com,D\nstored@acme.com,Again\ne@acme.com,E\n", batch_size=6)
    # The first part is written by its COPY; the second meets a stored address and is upserted.
    assert (report["created"], report["updated"], report["skipped"], report["rejected"]) == (5, 1, 0, 0)
    assert contact("stored@acme.com").first_name == "Again"
    assert {contact(f"{c}@acme.com").account_id for c in "abcde"} == {account("acme.com").id}

    monkeypatch.setitem(cells.LIMITS, "title", 10_000)  # let the database be the one to refuse a title
    report = run("contacts", "Email,Title\nf@acme.com,CEO\ng@acme.com," + "x" * 300 + "\nh@acme.com,\n"
                             "i@acme.com,\nj@acme.com,CFO\nk@acme.com,\n", batch_size=6)
    # The first part's bad row is found and reported; its other rows and the second part are written.
    assert (report["created"], report["rejected"], report["skipped"]) == (5, 1, 0)
    assert [(e["row"], "database refused" in e["message"]) for e in report["errors"]] == [(3, True)]
    assert contact("f@acme.com").title == "CEO" and contact("j@acme.com").title == "CFO"
    assert db.session.execute(select(func.count()).select_from(Contact)).scalar() == 11

    # The stored address's row carries 70 kB: the COPY inserts it (and fails on it) before reading on.
    report = run("contacts", "Email,Title,Notes\nl@acme.com,,\nm@acme.com,,\nn@acme.com,,\n"
                             f"stored@acme.com,COO,{'y' * 70_000}\no@acme.com,{'x' * 300},\np@acme.com,,\n",
                 batch_size=6)
    # The second part meets a stored address, then the database refuses one of its rows in the upsert:
    # the search for that row leaves out the first part, committed already.
    assert (report["created"], report["updated"], report["rejected"], report["skipped"]) == (4, 1, 1, 0)
    assert [e["row"] for e in report["errors"]] == [6]
    assert contact("stored@acme.com").title == "COO"
    assert db.session.execute(select(func.count()).select_from(Contact)).scalar() == 15
