-- Cancel a job. One that has not started (waiting, paused, delayed) is removed at once, as
-- remove.lua does. A running one is asked to stop: `cancelRequested` (ms) is set on its hash;
-- the job sees it (job.cancelled, JobCancelled from update_progress and log), and its
-- worker ends its process once the grace period is over. However its attempt then ends, it
-- fails with reason 'cancelled' and no retry (prelude.lua's CANCELLED).
-- ARGV: prefix, queue, maxlen, id
-- Returns {'removed', state} | {'cancelling', requested at ms} | {'finished', state}
--         | {'missing'}
local p, q, maxlen, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local k = jkey(p, q, id)
local f = redis.call('HMGET', k, 'state', 'cancelRequested')
local state = f[1]
if not state then return {'missing'} end
if state == 'active' then
  if f[2] then return {'cancelling', tonumber(f[2])} end
  local now = now_ms()
  redis.call('HSET', k, 'cancelRequested', now)
  return {'cancelling', now}
end
if state == 'waiting' or state == 'delayed' then
  redis.call('ZREM', skey(p, q, STATE_SET[state]), id)
  redis.call('LREM', skey(p, q, 'parked'), 0, id)
  drop_job(p, q, id)
  emit(p, q, maxlen, 'removed', id, 'reason', CANCELLED)
  return {'removed', state}
end
return {'finished', state}
