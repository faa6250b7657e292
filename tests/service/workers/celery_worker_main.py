"""A `flywheel worker` for tests: the real Celery worker, with a scripted backend whose training is slow.

Run as a script (so that it can be SIGKILLed like a real worker):
    python celery_worker_main.py STEP_SECONDS
Settings come from the environment (FLYWHEEL_CONFIG, FLYWHEEL_DATABASE_URL, REDIS_URL, ...), as for the real CLI.
"""

from __future__ import annotations

import sys

from flywheel.config import Settings
from flywheel.service.workers._celery import run_worker
from scripted_jobs import register_slow_scripted

register_slow_scripted(float(sys.argv[1]) if len(sys.argv) > 1 else 0.0)
run_worker(Settings.load(), queues=["flywheel", "accelerator"], concurrency=1, pool="solo")
