"""``abm demo``: the process supervisor and the demo's own playbooks (``playbooks/``)."""
