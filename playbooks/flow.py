"""The flow of a playbook as a graph: its steps in order and the edges between them
(the next step, a branch's then/else, a wait_until's timeout jump), for the picture on
the playbook page and in the dry run."""

from __future__ import annotations

from dataclasses import dataclass

from playbooks import duration
from playbooks.model import BranchStep, ExitStep, Playbook, WaitUntilStep


@dataclass(frozen=True)
class Edge:
    """From step index ``source`` to step index ``target`` (``len(steps)``: the end)."""

    source: int
    target: int
    label: str = ""


def edges(pb: Playbook) -> list[Edge]:
    end = len(pb.steps)
    out: list[Edge] = []
    for step in pb.steps:
        following = step.index + 1
        if isinstance(step, ExitStep):
            out.append(Edge(step.index, end, "exit"))
        elif isinstance(step, BranchStep):
            out.append(Edge(step.index, pb.step_index(step.then), "if"))
            out.append(Edge(step.index, pb.step_index(step.else_) if step.else_ else following, "else"))
        elif isinstance(step, WaitUntilStep):
            out.append(Edge(step.index, following, "when it holds"))
            if step.on_timeout == "exit":
                out.append(Edge(step.index, end, "timeout: exit"))
            elif step.on_timeout != "continue":
                out.append(Edge(step.index, pb.step_index(step.on_timeout), "timeout"))
        else:
            out.append(Edge(step.index, following))
    return out


def label(step) -> str:
    """A step in a few words: ``wait 3d``, ``email``, ``branch``..."""
    if step.kind == "wait":
        return f"wait {duration.format(step.duration)}"
    if step.kind == "set_stage":
        return f"set stage {step.stage}"
    return step.kind.replace("_", " ")


__all__ = ["Edge", "edges", "label"]
