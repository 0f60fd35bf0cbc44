"""Catalyst: the spec grammar and linter, rendering specs and catalyst.conf, running Catalyst."""
