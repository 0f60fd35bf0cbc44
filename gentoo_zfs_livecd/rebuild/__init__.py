"""Which stages a moved portage tree must rebuild: what each built stage holds, what changed
between two commits of gentoo.git, and the keep-or-rebuild decision per stage."""
