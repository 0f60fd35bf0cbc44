"""Releases: hashing, DIGESTS files, signatures and sidecars, publishing."""
