"""The Outbox: the ``.eml`` files the ``outbox`` connector wrote, newest first, and
one email shown (headers, the HTML part in a sandboxed frame, the text part).

The folders read are the product's ``OUTBOX_DIR`` and the ``directory`` setting of
every configured ``outbox`` connector. A folder is named in URLs by a short hash of
its path, and a file by its name, which must look like what
:func:`connectors.outbox.eml_name` makes: so a URL can only ever name a ``.eml``
file directly inside a known folder.

The HTML part is served on its own URL with ``Content-Security-Policy: sandbox;
default-src 'none'; style-src 'unsafe-inline'; img-src data:`` and shown in an
``<iframe sandbox="">``: no script runs, no form submits, nothing is fetched (the
tracking pixel and remote images stay unloaded, so looking at the demo records no
open), and a link in it cannot navigate the page.

Account and playbook come from the ``X-ABM-Touch`` header (``enrollment:step:contact``):
one query for the page's enrollments.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for

from abm.services import outbox as outbox_service
from abm.services import touch_search
from abm.web._access import MANAGERS, role_required
from abm.web.touches import filters_from_args
from connectors.outbox import eml_name

bp = Blueprint("outbox", __name__)

PAGE_SIZE = 100
MAX_EML = 10 * 1024 * 1024
HEAD_BYTES = 64 * 1024
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,250}\.eml$")
HTML_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


@dataclass
class Box:
    id: str
    path: Path
    label: str


@dataclass
class Item:
    box: Box
    name: str
    modified: datetime
    to: str
    subject: str
    sent: datetime | None
    touch_key: str | None
    account_id: int | None = None
    account: str | None = None
    playbook: str | None = None

    @property
    def time(self) -> datetime:
        return (self.sent or self.modified).astimezone(UTC)


def _box_id(path: Path) -> str:
    return hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:10]


def boxes() -> list[Box]:
    """The product's outbox folder, then each outbox connector's own folder (no duplicates)."""
    found: dict[Path, str] = {}
    default = current_app.config.get("OUTBOX_DIR")
    if default:
        found[Path(default).resolve()] = "the product's outbox folder"
    for name, directory in outbox_service.connector_directories():
        found.setdefault(Path(directory).resolve(), f"connector {name}")
    return [Box(_box_id(path), path, label) for path, label in found.items()]


def _header_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _read_headers(box: Box, path: Path, mtime: float | None = None) -> Item | None:
    """The list's fields of one file, from its first 64 KiB (the headers are on top)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
        modified = datetime.fromtimestamp(path.stat().st_mtime if mtime is None else mtime, UTC)
    except OSError:
        return None  # removed while we listed: simply not shown
    headers = BytesHeaderParser(policy=policy.default).parsebytes(head)
    return Item(box=box, name=path.name, modified=modified, to=str(headers.get("To", "")),
                subject=str(headers.get("Subject", "")), sent=_header_date(headers.get("Date")),
                touch_key=headers.get("X-ABM-Touch"))


def _enrollment_of(touch_key: str | None) -> int | None:
    head = (touch_key or "").split(":", 1)[0]
    return int(head) if head.isdigit() else None


def _annotate(items: list[Item]) -> None:
    """Account and playbook of each email, from its touch key's enrollment."""
    ids = {i for i in (_enrollment_of(item.touch_key) for item in items) if i is not None}
    if not ids:
        return
    found = outbox_service.enrollment_labels(ids)
    for item in items:
        label = found.get(_enrollment_of(item.touch_key))
        if label:
            item.account_id, item.account, item.playbook = label


def _files(known: list[Box]) -> list[tuple[float, str, Box]]:
    """(mtime, name, box) of every email file, newest first: one stat each, no reading."""
    found = []
    for box in known:
        try:
            entries = list(os.scandir(box.path))
        except OSError:
            continue  # the folder does not exist yet: nothing was written
        for entry in entries:
            if NAME.match(entry.name):
                try:
                    if entry.is_file():
                        found.append((entry.stat().st_mtime, entry.name, box))
                except OSError:
                    continue
    found.sort(key=lambda f: (f[0], f[1]), reverse=True)
    return found


def list_page(page: int, size: int | None = None) -> tuple[list[Item], int, list[Box]]:
    """One page of emails, newest first (by the file's time), their total, and the folders
    read. Only the page's files are opened, so a big outbox lists as fast as a small one."""
    size = size or PAGE_SIZE
    known = boxes()
    files = _files(known)
    items = []
    for mtime, name, box in files[(page - 1) * size:page * size]:
        item = _read_headers(box, box.path / name, mtime)
        if item:
            items.append(item)
    _annotate(items)
    return items, len(files), known


def _locate(box_id: str, name: str) -> tuple[Box, Path]:
    if not NAME.match(name):
        abort(404, description="no such email in the outbox")
    for box in boxes():
        if box.id == box_id:
            path = box.path / name
            if path.is_file() and path.resolve().parent == box.path:
                return box, path
            break
    abort(404, description="no such email in the outbox; it may have been removed")


def _parse(path: Path):
    if path.stat().st_size > MAX_EML:
        abort(413, description=f"this email is larger than {MAX_EML // (1024 * 1024)} MiB; download it instead")
    with path.open("rb") as fh:
        return BytesParser(policy=policy.default).parse(fh)


def _part(message, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    try:
        return part.get_content()
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace")


def _with_files(touches: list[dict], known: list[Box]) -> list[dict]:
    """Each touch with the box of its email file (None when no folder holds it: not sent
    yet, failed, or removed): one stat per touch and folder, whatever the outbox's size."""
    for touch in touches:
        name = eml_name(touch["key"])
        touch["box"] = next((box for box in known if (box.path / name).is_file()), None)
        touch["file"] = name
    return touches


@bp.get("/outbox")
@role_required(*MANAGERS)
def index():
    """The newest files; searched or filtered (playbook, step, status, account), the
    touches the outbox connectors carried, cursor-paged, each with its email file."""
    filters = filters_from_args()
    filters.channel, filters.event, filters.reason, filters.variant = "email", None, None, None
    known = boxes()
    options = {"filters": filters, "boxes": known, "playbooks": outbox_service.playbook_keys(),
               "statuses": touch_search.STATUSES}
    args = filters.as_args()
    if set(args) - {"channel"}:
        touches, cursor = touch_search.search(filters, request.args.get("cursor"), PAGE_SIZE,
                                              connectors=outbox_service.connector_names())
        return render_template("web/outbox/list.html", filtered=_with_files(touches, known), next_cursor=cursor,
                               args=args, first_page=not request.args.get("cursor"), **options)
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)
    items, total, known = list_page(page)
    return render_template("web/outbox/list.html", items=items, total=total, page=page,
                           has_next=page * PAGE_SIZE < total, **options)


@bp.get("/outbox/<box_id>/<name>")
@role_required(*MANAGERS)
def show(box_id: str, name: str):
    box, path = _locate(box_id, name)
    message = _parse(path)
    item = _read_headers(box, path)
    if item is None:
        abort(404, description="no such email in the outbox; it may have been removed")
    _annotate([item])
    headers = [(k, str(v)) for k, v in message.items()]
    return render_template("web/outbox/show.html", item=item, headers=headers, text=_part(message, "plain"),
                           has_html=_part(message, "html") is not None,
                           html_url=url_for("outbox.html_part", box_id=box.id, name=name),
                           raw_url=url_for("outbox.raw", box_id=box.id, name=name))


@bp.get("/outbox/<box_id>/<name>/html")
@role_required(*MANAGERS)
def html_part(box_id: str, name: str):
    _, path = _locate(box_id, name)
    html = _part(_parse(path), "html")
    if html is None:
        abort(404, description="this email has no HTML part")
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = HTML_CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/outbox/<box_id>/<name>/raw")
@role_required(*MANAGERS)
def raw(box_id: str, name: str):
    _, path = _locate(box_id, name)
    resp = Response(path.read_bytes(), mimetype="message/rfc822")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
