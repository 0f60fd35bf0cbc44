"""Nightly builds: the run history, notifications and the HTML report."""
