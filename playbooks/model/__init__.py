"""The compiled playbook: frozen dataclasses, JSON round trip.

``playbooks.load`` builds a :class:`Playbook`; ``Playbook.to_dict()`` gives plain
JSON (store it with the version), ``Playbook.from_dict()`` gives it back, equal.
Everything here is already validated: step ids are unique, jump targets are later
step ids, connectors are resolved (a step's ``connector`` is the name of the one
that serves it, the workspace default filled in), email template files are read
into ``body`` (so a stored version does not change when the file does).

The package's modules, each imported here: ``entry`` (audience and triggers),
``pacing`` (send window and caps), ``steps`` (one class a step kind) and ``playbook``
(the playbook that holds them).
"""

from playbooks.model.entry import (
    ActivityTrigger,
    Audience,
    ScoreCrossedTrigger,
    StageChangedTrigger,
    Trigger,
    trigger_from_dict,
)
from playbooks.model.pacing import DAYS, Cap, SendWindow
from playbooks.model.playbook import Playbook
from playbooks.model.steps import (
    CHANNEL_OF_KIND,
    STEP_KINDS,
    TOUCH_KINDS,
    AlertStep,
    AudienceStep,
    BranchStep,
    EmailStep,
    ExitStep,
    Recipients,
    SetStageStep,
    Step,
    TaskStep,
    WaitStep,
    WaitUntilStep,
    WebhookStep,
    step_from_dict,
)

__all__ = [
    "CHANNEL_OF_KIND", "DAYS", "STEP_KINDS", "TOUCH_KINDS", "ActivityTrigger", "AlertStep", "Audience", "AudienceStep",
    "BranchStep", "Cap", "EmailStep", "ExitStep", "Playbook", "Recipients", "ScoreCrossedTrigger", "SendWindow",
    "SetStageStep", "StageChangedTrigger", "Step", "TaskStep", "Trigger", "WaitStep", "WaitUntilStep", "WebhookStep",
    "step_from_dict", "trigger_from_dict",
]
