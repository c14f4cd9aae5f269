-- An attempt succeeded. ARGV: prefix, queue, id, token, returnvalue, keep, age ms, maxlen
-- Returns 1, or 0 when this worker no longer holds the job (it was found stalled).
local p, q, id, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local k = jkey(p, q, id)
if redis.call('HGET', k, 'token') ~= token or redis.call('HGET', k, 'state') ~= 'active' then
  return 0
end
local now = now_ms()
local started = tonumber(redis.call('HGET', k, 'processedOn'))
redis.call('ZREM', skey(p, q, 'active'), id)
redis.call('DEL', p .. q .. ':lock:' .. id)
redis.call('HINCRBY', k, 'attemptsMade', 1)
redis.call('HSET', k, 'state', 'completed', 'finishedOn', now, 'returnvalue', ARGV[5])
redis.call('HDEL', k, 'token')
redis.call('ZADD', skey(p, q, 'completed'), now, id)
count_minute(p, q, now, 'completed', 1)
count_minute(p, q, now, 'ms', now - started)
sample(p, q, 'durations', now - started)
emit(p, q, ARGV[8], 'completed', id, 'returnvalue', ARGV[5])
trim(p, q, 'completed', id, tonumber(ARGV[6]), tonumber(ARGV[7]), now)
return 1
