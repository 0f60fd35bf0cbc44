"""The kernel: config rules and the Kconfig tree check, kernel/ZFS compatibility."""
