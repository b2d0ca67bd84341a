"""``python -m umig_monitor``."""

import sys

from umig_monitor.cli import main

sys.exit(main())
