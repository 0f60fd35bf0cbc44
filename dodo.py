"""gentoo-zfs-livecd: `doit list` shows the tasks; README.md explains them."""
from tasks import *  # noqa: F401,F403  (the task creators, listed in tasks.__all__)
from tasks.doit_glue.context import doit_config

DOIT_CONFIG = doit_config()
