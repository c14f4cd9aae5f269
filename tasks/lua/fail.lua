-- An attempt failed. ARGV: prefix, queue, id, token, reason, stacktrace, retry delay ms
-- (-1: no retry, the job fails; -2: as the attempt's own resent message says, when it sent
-- one: Celery's self.retry(countdown=...), see send.lua), keep, age ms, maxlen,
-- stacktraces kept, and why it failed when that is counted on its own ('expired': a
-- Celery message past its `expires`; '' otherwise)
-- A job cancelled while it ran (cancel.lua) fails for good, with reason CANCELLED.
-- Returns 'retrying' | 'failed', or 0 when this worker no longer holds the job.
local p, q, id = ARGV[1], ARGV[2], ARGV[3]
local resent = redis.call('HMGET', jkey(p, q, id), 'resent', 'resentDue')
local k, now, made, name, cancelled = end_attempt(p, q, id, ARGV[4])
if not k then return 0 end
if cancelled then ARGV[5], ARGV[7] = CANCELLED, '-1' end
if ARGV[7] == '-2' then
  ARGV[7] = '-1'
  if resent[1] then ARGV[7] = tostring(math.max(0, (tonumber(resent[2]) or now) - now)) end
end
local traces = cjson.decode(redis.call('HGET', k, 'stacktrace') or '[]')
table.insert(traces, ARGV[6])
while #traces > tonumber(ARGV[11]) do table.remove(traces, 1) end
redis.call('HSET', k, 'failedReason', ARGV[5], 'stacktrace', cjson.encode(traces))
local delay = tonumber(ARGV[7])
if delay >= 0 then
  count_minute(p, q, now, 'retried', 1)
  count_total(p, q, 'retried', name)
  if delay == 0 then
    emit(p, q, ARGV[10], 'retrying', id, 'attemptsMade', made, 'failedReason', ARGV[5], 'delay', 0)
    make_waiting(p, q, id, now, ARGV[10])
  else
    make_delayed(p, q, id, now + delay, ARGV[10], 'retrying', 'attemptsMade', made,
                 'failedReason', ARGV[5], 'delay', delay)
  end
  return 'retrying'
end
redis.call('HSET', k, 'state', 'failed', 'finishedOn', now)
redis.call('ZADD', skey(p, q, 'failed'), now, id)
count_outcome(p, q, now, 'failed', name)
if ARGV[12] == 'expired' then count_total(p, q, 'expired', name) end
emit(p, q, ARGV[10], 'failed', id, 'failedReason', ARGV[5], 'attemptsMade', made)
failed_for_good(p, q, id, ARGV[5], now, ARGV[10])
trim(p, q, 'failed', id, tonumber(ARGV[8]), tonumber(ARGV[9]), now)
return 'failed'
