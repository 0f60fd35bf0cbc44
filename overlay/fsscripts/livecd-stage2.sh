#!/bin/bash
# Runs inside the live CD chroot after the kernel and ZFS were built (livecd/fsscript).
# Catalyst unpacks the modules tarball back into the root after merging ZFS; refresh the module
# dependency files of every installed kernel so `modprobe zfs` finds zfs.ko and spl.ko.
set -eu
for modules in /lib/modules/*/; do
	release=$(basename "${modules}")
	depmod -a "${release}"
	echo "depmod: ${release}"
done
