"""Command modules for ``abm``; each exports ``commands`` (a list of click commands)."""
