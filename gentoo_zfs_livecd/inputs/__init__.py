"""Gentoo inputs: the seed stage3 from the mirrors, the gentoo.git snapshot, OpenPGP checks."""
