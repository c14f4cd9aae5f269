-- An attempt succeeded. ARGV: prefix, queue, id, token, returnvalue, keep, age ms, maxlen
-- Returns 1, or 0 when this worker no longer holds the job (it was found stalled).
return complete_job(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]),
                    tonumber(ARGV[7]), ARGV[8])
