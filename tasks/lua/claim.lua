-- A worker holds a job's message it popped itself (a transport other than
-- tasks.worker.transport, or a global key prefix): take the job if it is still waiting and
-- allowed to start.
-- ARGV: prefix, queue, id, worker, token, lock ms, maxlen, rate max (0: none), rate ms,
--       max stalled
-- Returns what claim_job (prelude.lua) returns.
return claim_job(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7],
                 tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]))
