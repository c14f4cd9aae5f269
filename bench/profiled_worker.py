"""`python -m bench.profiled_worker -A APP worker ...`: a Celery worker under cProfile.

The profiler runs from worker_ready to the shutdown signal, in the main thread (where a
`-P solo` worker runs its jobs), so start-up and imports are not in the profile. It is
written to BENCH_PROFILE_OUT.
"""

import cProfile
import os
import sys

from celery import signals

_profiler = cProfile.Profile()


@signals.worker_ready.connect(weak=False)
def _start(**kwargs) -> None:
    _profiler.enable()


@signals.worker_shutting_down.connect(weak=False)
def _stop(**kwargs) -> None:
    _profiler.disable()
    _profiler.dump_stats(os.environ["BENCH_PROFILE_OUT"])


if __name__ == "__main__":
    from celery.__main__ import main

    sys.argv[0] = "celery"
    sys.exit(main())
