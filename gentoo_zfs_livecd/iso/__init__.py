"""The ISO: inspection without booting, grub.cfg, the QEMU boot test."""
