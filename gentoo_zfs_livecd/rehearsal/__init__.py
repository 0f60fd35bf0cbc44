"""Rehearsals: the Catalyst emulator, its small real ISO and tiny portage tree."""
