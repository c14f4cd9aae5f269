-- A claimed job goes back unrun, without burning an attempt: its worker does not know its
-- task (a rolling deploy: the web sends a type an old worker lacks), or the attempt ended by
-- sending its own next run (Celery's self.replace(), a Reject with requeue).
-- It is due again after `delay` ms (0: at once), so that a worker that cannot run it does
-- not spin on it while a worker that can takes it. A job handed back for longer than
-- `grace` ms (0: no limit) fails instead, with `reason`: nobody is coming for it.
-- ARGV: prefix, queue, id, token, maxlen, delay ms, reason, grace ms, keep, age ms
-- Returns 'waiting' | 'delayed' | 'failed', or 0 when the token no longer holds the job.
local p, q, id, token, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local delay, reason, grace = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local k = jkey(p, q, id)
local f = redis.call('HMGET', k, 'token', 'state', 'handedBackSince', 'name', 'cancelRequested')
if f[1] ~= token or f[2] ~= 'active' then return 0 end
local now = now_ms()
redis.call('ZREM', skey(p, q, 'active'), id)
redis.call('DEL', qkey(p, q, 'lock', id))
redis.call('HDEL', k, 'token', 'worker', 'processedOn', 'resent', 'resentDue')
redis.call('HINCRBY', k, 'attemptsStarted', -1)  -- it never started
if f[5] then  -- cancelled meanwhile: it is not sent again
  fail_cancelled(p, q, id, k, now, maxlen, tonumber(ARGV[9]), tonumber(ARGV[10]), f[4])
  return 'failed'
end
if grace > 0 then
  local since = tonumber(f[3])
  if not since then
    since = now
    redis.call('HSET', k, 'handedBackSince', now)
  end
  if now - since > grace then
    redis.call('HSET', k, 'state', 'failed', 'finishedOn', now, 'failedReason', reason)
    redis.call('ZADD', skey(p, q, 'failed'), now, id)
    count_outcome(p, q, now, 'failed', f[4])
    emit(p, q, maxlen, 'failed', id, 'failedReason', reason)
    failed_for_good(p, q, id, reason, now, maxlen)
    trim(p, q, 'failed', id, tonumber(ARGV[9]), tonumber(ARGV[10]), now)
    return 'failed'
  end
else
  redis.call('HDEL', k, 'handedBackSince')
end
if delay > 0 then
  make_delayed(p, q, id, now + delay, maxlen, 'delayed', 'reason', reason)
  return 'delayed'
end
make_waiting(p, q, id, now, maxlen)
return 'waiting'
