"""Container health probe for flywheel's image (Docker HEALTHCHECK, compose healthchecks, Kubernetes probes).

    python /app/deploy/bin/healthcheck.py api [PORT]   GET http://127.0.0.1:PORT/health (PORT: 8000)
    python /app/deploy/bin/healthcheck.py worker       a Celery ping answered by a `flywheel worker` of this host

Exit status 0 when healthy, 1 otherwise, with one line saying why. The worker check reads the same settings as the
worker (FLYWHEEL_CONFIG, REDIS_URL), so it pings through the same broker and Redis key prefix; the worker's name is
``flywheel-<queues>@<hostname>`` and the container's hostname is the pod's or container's, so only this
container's worker counts.
"""

from __future__ import annotations

import socket
import sys
import urllib.request

#: Probes give up after this long (Docker and Kubernetes time them out a little later).
TIMEOUT_S = 4.0


def check_api(port: int, timeout: float) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def check_worker(timeout: float) -> tuple[bool, str]:
    from flywheel.config import Settings
    from flywheel.service.workers._celery import make_celery

    host = socket.gethostname()
    app = make_celery(Settings.load())
    try:
        replies = app.control.ping(timeout=timeout) or []
    except Exception as exc:  # the broker is unreachable: say so rather than print a traceback
        return False, f"Celery ping failed: {exc}"
    finally:
        app.close()
    names = [
        name
        for reply in replies
        for name in reply
        if name.startswith("flywheel-") and name.endswith(f"@{host}")
    ]
    if names:
        return True, f"answered: {', '.join(sorted(names))}"
    return False, f"no flywheel worker on {host} answered a Celery ping within {timeout:g}s"


def main(argv: list[str]) -> int:
    usage = "usage: healthcheck.py api [PORT] | worker"
    if not argv or argv[0] not in ("api", "worker") or len(argv) > (2 if argv[0] == "api" else 1):
        print(usage, file=sys.stderr)
        return 2
    if argv[0] == "api":
        if len(argv) == 2 and not argv[1].isdigit():
            print(usage, file=sys.stderr)
            return 2
        ok, why = check_api(int(argv[1]) if len(argv) == 2 else 8000, TIMEOUT_S)
    else:
        ok, why = check_worker(TIMEOUT_S)
    print(why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
