-- A consumer closing with a job it took but never handed to a worker: give the job back
-- unrun (no attempt, no stall, no start counted) and its message back to the consuming end of its list.
-- ARGV: prefix, queue, id, token, maxlen, list, message
-- Returns 1, or 0 when the token no longer holds the job.
local p, q, id, token, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local k = jkey(p, q, id)
local f = redis.call('HMGET', k, 'token', 'state', 'waitingSince', 'group')
if f[1] ~= token or f[2] ~= 'active' then return 0 end
redis.call('ZREM', skey(p, q, 'active'), id)
local group = f[4]
if group then redis.call('SREM', qkey(p, q, 'gactive', group), id) end
redis.call('DEL', qkey(p, q, 'lock', id))
redis.call('HDEL', k, 'token', 'worker', 'processedOn')
redis.call('HSET', k, 'state', 'waiting')
redis.call('HINCRBY', k, 'attemptsStarted', -1)  -- it never started
redis.call('ZADD', skey(p, q, 'wait'), tonumber(f[3]) or now_ms(), id)
if redis.call('EXISTS', skey(p, q, 'paused')) == 1 then
  redis.call('RPUSH', skey(p, q, 'parked'), id)
elseif group then  -- back to the front of its group's list, not the queue's
  redis.call('RPUSH', qkey(p, q, 'gjobs', group), ARGV[7])
  group_entered(p, q, group, id)
  ring(p, q)
else
  redis.call('RPUSH', ARGV[6], ARGV[7])
  ring(p, q)
end
emit(p, q, maxlen, 'waiting', id)
return 1
