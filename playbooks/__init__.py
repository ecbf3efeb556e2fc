"""The playbook language: schema, loader with line numbers, validator, conditions,
templates, send windows and the state machine that advances an enrollment.

Pure Python: imports nothing of ``abm``, Flask or a database. See README.md here.
"""

from playbooks import conditions, duration, holdout, machine, templates, windows
from playbooks.conditions import AccountFacts
from playbooks.errors import LoadResult, PlaybookError
from playbooks.loader import load, load_file
from playbooks.machine import Advance, EnrollmentState, SetStageAction, SkippedAction, TouchAction, advance
from playbooks.model import (
    ActivityTrigger,
    AlertStep,
    Audience,
    AudienceStep,
    BranchStep,
    Cap,
    EmailStep,
    ExitStep,
    Playbook,
    Recipients,
    ScoreCrossedTrigger,
    SendWindow,
    SetStageStep,
    StageChangedTrigger,
    Step,
    TaskStep,
    WaitStep,
    WaitUntilStep,
    WebhookStep,
)
from playbooks.templates import TemplateError
from playbooks.windows import in_window, next_window_opening
from playbooks.workspace import Workspace

__all__ = [
    "AccountFacts", "ActivityTrigger", "Advance", "AlertStep", "Audience", "AudienceStep", "BranchStep", "Cap",
    "EmailStep", "EnrollmentState", "ExitStep", "LoadResult", "Playbook", "PlaybookError", "Recipients",
    "ScoreCrossedTrigger", "SendWindow", "SetStageAction", "SetStageStep", "SkippedAction", "StageChangedTrigger",
    "Step", "TaskStep", "TemplateError", "TouchAction", "WaitStep", "WaitUntilStep", "WebhookStep", "Workspace",
    "advance", "conditions", "duration", "holdout", "in_window", "load", "load_file", "machine", "next_window_opening",
    "templates", "windows",
]
