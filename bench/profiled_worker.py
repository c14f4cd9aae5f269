"""`python -m bench.profiled_worker -A APP worker ...`: a Celery worker under cProfile.

The profiler runs from worker_ready to the shutdown signal, in the main thread (where a
`-P solo` worker runs its jobs), so start-up and imports are not in the profile. It is
written to BENCH_PROFILE_OUT.
"""

import cProfile
import os
import sys
import time

from celery import signals

# BENCH_PROFILE_TIMER=cpu counts CPU time (the process's, all threads) instead of wall time,
# so waits for Redis replies drop out and what is left is what the worker itself spends.
_profiler = cProfile.Profile(
    time.process_time if os.environ.get("BENCH_PROFILE_TIMER") == "cpu" else time.perf_counter
)


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
