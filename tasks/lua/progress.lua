-- ARGV: prefix, queue, id, token, progress json, maxlen. Returns 0 if the job is not ours,
-- 1 written, 2 written but the job was cancelled (cancel.lua): it should stop.
local p, q, id = ARGV[1], ARGV[2], ARGV[3]
local k = jkey(p, q, id)
local f = redis.call('HMGET', k, 'token', 'cancelRequested')
if f[1] ~= ARGV[4] then return 0 end
redis.call('HSET', k, 'progress', ARGV[5])
emit(p, q, ARGV[6], 'progress', id, 'progress', ARGV[5])
if f[2] then return 2 end
return 1
