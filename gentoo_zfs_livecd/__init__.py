"""gentoo-zfs-livecd's library: everything that knows nothing of doit, by domain (README: How the code is laid out)."""
