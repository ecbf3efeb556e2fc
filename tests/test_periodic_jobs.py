"""Every periodic job the scheduler registers exists, and each area's jobs are there."""

from __future__ import annotations


def test_the_scheduler_registers_every_periodic_job(app):
    from abm.redis_conn import get_redis
    from workers import scheduler

    names = {job.func_name for job in scheduler.build(get_redis()).get_jobs()}
    assert {
        "workers.dispatcher.run_dispatch", "workers.dispatcher.recover", "workers.dispatcher.run_sweep",
        "workers.engagement_jobs.drain_events", "workers.engagement_jobs.match_pending",
        "workers.engagement_jobs.refresh_scores", "workers.engagement_jobs.snapshot_scores",
        "workers.engagement_jobs.surge_alerts", "workers.engagement_jobs.refresh_kpi_rollups",
        "workers.engagement_jobs.purge_idempotency_keys", "workers.crm_jobs.poll_crms",
        "workers.crm_jobs.write_back_scores", "workers.report_jobs.send_weekly_kpi_report",
    } <= names


def test_periodic_engagement_jobs_run(app):
    from workers import engagement_jobs

    assert engagement_jobs.drain_events()["stored"] == 0
    assert engagement_jobs.match_pending() == 0
    engagement_jobs.refresh_scores()
    assert engagement_jobs.snapshot_scores() == 0
    assert engagement_jobs.surge_alerts() == 0
    assert engagement_jobs.refresh_kpi_rollups() == 2  # the default view: 90 days by playbook and by channel
    assert engagement_jobs.purge_idempotency_keys() == 0
