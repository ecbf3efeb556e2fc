"""The A/B results of a playbook's email steps: each variant's counts, and each variant
compared with the first one written (the baseline) on click and reply rate.

A rate is the touches with at least one such event over the touches sent (a touch that
was never sent cannot be clicked; delivered is not used as the base because not every
connector reports deliveries). The comparison is the difference of the two rates,
variant minus baseline, with its 95% interval by Newcombe's hybrid score method (method
10 of Newcombe 1998: the two Wilson score intervals combined), the one the KPIs use for
lift (:func:`abm.metrics.difference`). An interval that excludes 0 says the variants
differ at the 5% level; one that spans 0 says the data cannot tell them apart yet.
"""

from __future__ import annotations

from abm import metrics
from abm.services import playbooks as playbook_service
from abm.services import touch_search
from playbooks import variants as variant_rules
from playbooks.model import EmailStep, Playbook

#: The rates compared: (label, the result counted, over the status counted).
COMPARED = (("click rate", "clicked", "sent"), ("reply rate", "replied", "sent"))
METHOD = "Newcombe hybrid score interval (method 10, from two Wilson intervals), 95%"


def of_step(step: EmailStep, results: dict) -> dict | None:
    """The variants of one email step with their counts and the comparisons, or None
    for a step without variants. ``results``: the step's entry of
    :func:`abm.services.touch_search.step_results` (empty when it has no touch yet)."""
    if not getattr(step, "variants", ()):
        return None
    counted = (results or {}).get("variants", {})
    shares = variant_rules.shares(step.variants)
    rows = []
    for variant in step.variants:
        mine = counted.get(variant.name, {"statuses": {}, "events": {}})
        rows.append({"name": variant.name, "weight": variant.weight, "share": shares[variant.name],
                     "overrides": list(variant.overrides), "statuses": mine["statuses"], "events": mine["events"]})
    baseline = rows[0]
    comparisons = [compare(label, baseline, row, result, base)
                   for row in rows[1:] for label, result, base in COMPARED]
    return {"baseline": baseline["name"], "variants": rows, "comparisons": comparisons, "method": METHOD}


def compare(label: str, baseline: dict, variant: dict, result: str, base: str) -> dict:
    """One rate of ``variant`` against ``baseline`` (each a row of :func:`of_step`)."""
    s1, n1 = variant["events"].get(result, 0), variant["statuses"].get(base, 0)
    s0, n0 = baseline["events"].get(result, 0), baseline["statuses"].get(base, 0)
    interval = metrics.difference(s1, n1, s0, n0)
    out = {"metric": label, "result": result, "base": base, "variant": variant["name"],
           "baseline": baseline["name"], "variant_count": s1, "variant_base": n1, "baseline_count": s0,
           "baseline_base": n0, "variant_rate": metrics.rate(s1, n1), "baseline_rate": metrics.rate(s0, n0),
           "difference": None, "low": None, "high": None, "verdict": "no touch sent yet in one of them"}
    if interval is not None:
        out.update(difference=interval.estimate, low=interval.low, high=interval.high,
                   verdict=_verdict(interval, variant["name"], baseline["name"], label))
    return out


def _verdict(interval: metrics.Interval, name: str, baseline: str, label: str) -> str:
    if interval.low > 0:
        return f"{name} has the higher {label} (the interval is above 0)"
    if interval.high < 0:
        return f"{baseline} has the higher {label} (the interval is below 0)"
    return "no measurable difference yet (the interval spans 0)"


def of_playbook(pb: Playbook, results: dict[str, dict]) -> dict[str, dict]:
    """step id -> :func:`of_step` for the email steps of ``pb`` that have variants."""
    out = {}
    for step in pb.steps:
        found = of_step(step, results.get(step.id, {})) if isinstance(step, EmailStep) else None
        if found is not None:
            out[step.id] = found
    return out


def results_of(key: str) -> dict:
    """What each touch-making step of a playbook did (touches of every version, by step id
    of the current version): counts by status with their reasons, engagement counts, and
    for an email step with variants the same per variant with the comparisons (the
    ``GET /api/v1/playbooks/<key>/results`` answer)."""
    row = playbook_service.get(key)
    pb = playbook_service.compiled(playbook_service.current_version(row))
    results = touch_search.step_results(row.id)
    tests = of_playbook(pb, results)
    steps = []
    for step in pb.steps:
        if not step.makes_touches:
            continue
        mine = results.get(step.id, {})
        steps.append({"id": step.id, "kind": step.kind, "statuses": mine.get("statuses", {}),
                      "reasons": mine.get("reasons", {}), "events": mine.get("events", {}),
                      "ab": tests.get(step.id)})
    return {"key": row.key, "version": row.current_version, "steps": steps}


__all__ = ["of_step", "of_playbook", "compare", "results_of", "COMPARED", "METHOD"]
