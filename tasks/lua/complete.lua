-- An attempt succeeded. ARGV: prefix, queue, id, token, returnvalue, keep, age ms, maxlen
-- Returns 1, or 0 when this worker no longer holds the job (it was found stalled).
local p, q, id = ARGV[1], ARGV[2], ARGV[3]
local k, now = end_attempt(p, q, id, ARGV[4])
if not k then return 0 end
redis.call('HSET', k, 'state', 'completed', 'finishedOn', now, 'returnvalue', ARGV[5])
redis.call('ZADD', skey(p, q, 'completed'), now, id)
count_minute(p, q, now, 'completed', 1)
emit(p, q, ARGV[8], 'completed', id, 'returnvalue', ARGV[5])
trim(p, q, 'completed', id, tonumber(ARGV[6]), tonumber(ARGV[7]), now)
return 1
