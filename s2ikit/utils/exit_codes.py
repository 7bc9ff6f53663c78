"""The exit status of every `s2ikit` command, in one place (README, "Exit codes", lists the same).

A job script can branch on them: 0 is finished; 75 and 76 mean "not finished, the state is saved: run the same
command again to go on" (requeue the job); 2 and 3 need a person. Training also writes the code into
RUN/status.json (`exit_code`), where a launcher such as torchrun, which reports its own status, hides it.
"""

from __future__ import annotations

DONE = 0  # finished (or already finished: nothing to do)
ERROR = 1  # an unexpected failure: a traceback, a bug to report
BAD_INPUT = 2  # bad input or setup, one line naming the file or flag (also a run folder in use, a refused resume)
DIVERGED = 3  # training stopped because a loss went non-finite or past gan.divergence_threshold; checkpoint kept
PREEMPTED = 75  # stopped by SIGTERM or SIGUSR1 (a cluster's preemption or time limit); state saved: rerun to go on
TIME_BUDGET = 76  # training stopped by its time budget (time_budget_minutes / --minutes); state saved: rerun to go on

MEANINGS = {
    DONE: "done",
    ERROR: "unexpected error",
    BAD_INPUT: "bad input",
    DIVERGED: "training diverged",
    PREEMPTED: "stopped by a signal; rerun to go on",
    TIME_BUDGET: "stopped by the time budget; rerun to go on",
}
