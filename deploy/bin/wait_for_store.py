"""Wait until flywheel's store has been migrated (the image's /app/deploy/bin/wait_for_store.py).

    python /app/deploy/bin/wait_for_store.py [SECONDS]

Exit 0 once the store (FLYWHEEL_DATABASE_URL, else SQLite in FLYWHEEL_HOME, as for every flywheel command) is at
this image's newest migration; 1 after SECONDS (default 600), saying where it is. The init container of the
Kubernetes API and worker pods: the Job `flywheel-migrate` runs `flywheel db upgrade` once, and the pods start
after it, so several pods starting together never migrate the same database at the same time. (Every flywheel
process also migrates when it opens the store; this only keeps them from doing it concurrently.)
"""

from __future__ import annotations

import sys
import time

POLL_S = 2.0


def wait(timeout_s: float) -> int:
    from flywheel.config import Settings
    from flywheel.store import connect, current_revision, head_revision

    settings = Settings.load()
    head = head_revision()
    engine = connect(settings.database_url)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            revision, error = current_revision(engine), ""
        except Exception as exc:  # the server is not up yet: keep waiting, say why at the end
            revision, error = None, f" ({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
        if revision == head:
            print(f"store at revision {head}")
            return 0
        if time.monotonic() >= deadline:
            print(
                f"store at {settings.redacted_database_url()} is at revision {revision}, not {head}, after "
                f"{timeout_s:g}s{error}: has `flywheel db upgrade` (the Kubernetes job flywheel-migrate) run?"
            )
            return 1
        time.sleep(POLL_S)


def main(argv: list[str]) -> int:
    try:
        timeout_s = float(argv[0]) if len(argv) == 1 else 600.0 if not argv else None
    except ValueError:
        timeout_s = None
    if timeout_s is None:
        print("usage: wait_for_store.py [SECONDS]", file=sys.stderr)
        return 2
    return wait(timeout_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
