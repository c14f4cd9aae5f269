-- Append lines to a running job's log (job.log), keeping the newest `keep` lines.
-- ARGV: prefix, queue, id, token, keep, line...
-- Returns {lines now held, cancelled (1 when cancel.lua asked the job to stop)}, or
-- {-1, 0} when `token` no longer holds the job (nothing is written).
local p, q, id, token, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local f = redis.call('HMGET', jkey(p, q, id), 'token', 'cancelRequested')
if f[1] ~= token then return {-1, 0} end
local key = qkey(p, q, 'logs', id)
local n = redis.call('RPUSH', key, unpack(ARGV, 6))
if n > keep then
  redis.call('LTRIM', key, -keep, -1)
  n = keep
end
local cancelled = 0
if f[2] then cancelled = 1 end
return {n, cancelled}
