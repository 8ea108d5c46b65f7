"""Workflow logic on plain data: the model and its validation, matching, planning, rendering."""
