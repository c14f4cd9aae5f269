-- ARGV: prefix, queue, id, token, progress json, maxlen. Returns 0 if the job is not ours.
local p, q, id = ARGV[1], ARGV[2], ARGV[3]
local k = jkey(p, q, id)
if redis.call('HGET', k, 'token') ~= ARGV[4] then return 0 end
redis.call('HSET', k, 'progress', ARGV[5])
emit(p, q, ARGV[6], 'progress', id, 'progress', ARGV[5])
return 1
