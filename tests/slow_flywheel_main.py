"""The real `flywheel` command line, with a scripted backend named ``slow-scripted`` whose training takes
``FLYWHEEL_TEST_STEP_S`` seconds per step — so fault-injection tests can SIGINT or SIGKILL a real process mid-step.

    python slow_flywheel_main.py [flywheel arguments …]
"""

from __future__ import annotations

import os

from flywheel.cli.main import main
from scripted_jobs import register_slow_scripted

register_slow_scripted(float(os.environ.get("FLYWHEEL_TEST_STEP_S", "0.05")))
main()
