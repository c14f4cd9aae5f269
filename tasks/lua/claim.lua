-- A worker received a job's message: take it if it is still waiting and allowed to start.
-- ARGV: prefix, queue, id, worker, token, lock ms, maxlen, rate max (0: none), rate ms
-- Returns {'ok', name, data, opts, attemptsMade, attempts, createdAt}
--      or {'missing'} | {'skip', state} | {'paused'} | {'limited', due}
local p, q, id, worker, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local lock_ms, maxlen = tonumber(ARGV[6]), ARGV[7]
local rate_max, rate_ms = tonumber(ARGV[8]), tonumber(ARGV[9])
local k = jkey(p, q, id)
local state = redis.call('HGET', k, 'state')
if not state then return {'missing'} end
-- Redelivery, a second copy, or a copy that outlived a restart: the effect happens once.
if state ~= 'waiting' then return {'skip', state} end
if redis.call('EXISTS', skey(p, q, 'paused')) == 1 then
  redis.call('RPUSH', skey(p, q, 'parked'), id)
  return {'paused'}
end
local now = now_ms()
if rate_max > 0 then
  -- A sliding log of start times: no window of rate_ms ever holds more than rate_max.
  local log = skey(p, q, 'limiter')
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - rate_ms)
  if redis.call('ZCARD', log) >= rate_max then
    local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    local due = tonumber(oldest[2]) + rate_ms
    redis.call('ZREM', skey(p, q, 'wait'), id)
    make_delayed(p, q, id, due, maxlen, 'delayed', 'reason', 'rate limit')
    return {'limited', due}
  end
  redis.call('ZADD', log, now, token)
  redis.call('PEXPIRE', log, rate_ms * 2)
end
local f = redis.call('HMGET', k, 'name', 'data', 'opts', 'attemptsMade', 'attempts',
                     'createdAt', 'waitingSince')
redis.call('ZREM', skey(p, q, 'wait'), id)
redis.call('ZADD', skey(p, q, 'active'), now, id)
redis.call('HSET', k, 'state', 'active', 'processedOn', now, 'worker', worker, 'token', token)
redis.call('SET', p .. q .. ':lock:' .. id, token, 'PX', lock_ms)
sample(p, q, 'waits', now - tonumber(f[7] or f[6]))
emit(p, q, maxlen, 'active', id, 'worker', worker)
return {'ok', f[1], f[2], f[3], f[4], f[5], f[6]}
