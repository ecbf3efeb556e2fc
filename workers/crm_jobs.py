"""Periodic CRM jobs: the stage and opportunity poll, the score write-back, the timeline digests.

``PERIODIC`` lists them as ``(function path, queue, every N seconds)``, the form of
``workers.scheduler.PERIODIC``; the scheduler registers them with RQ's cron.
"""

from __future__ import annotations

from abm.services import crm_poll, crm_timeline, crm_writeback

#: (function path, queue, every N seconds)
PERIODIC = (
    ("workers.crm_jobs.poll_crms", "default", 60),  # Salesforce changes within about a minute
    ("workers.crm_jobs.write_back_scores", "default", 900),
    ("workers.crm_jobs.write_timelines", "default", 3600),
)


def poll_crms() -> dict:
    """Poll every enabled HubSpot and Salesforce connector (see abm.services.crm_poll)."""
    return crm_poll.poll_all()


def write_back_scores() -> dict:
    """Write changed engagement scores to every CRM with write-back configured."""
    return crm_writeback.write_back_all()


def write_timelines() -> dict:
    """Write each account's engagement digest to the CRM timeline, at each connector's cadence."""

    return crm_timeline.write_all()
