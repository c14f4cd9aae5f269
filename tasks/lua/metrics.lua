-- Every figure of the given queues in one round trip (the metrics API reads all queues at
-- once). ARGV: prefix, current minute, window in minutes, queue...
-- Per queue: {wait, active, completed, failed, delayed, paused flag,
--             "c,c,..." completed per minute, "f,..." failed, "r,..." retried (oldest first),
--             {mean, p95, n} processing ms, {mean, p95, n} waiting ms, waiting-children}
local p, minute, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local function summary(key)
  local values = redis.call('LRANGE', key, 0, -1)
  local n = #values
  if n == 0 then return {'', '', 0} end
  local sum = 0
  for i = 1, n do
    values[i] = tonumber(values[i])
    sum = sum + values[i]
  end
  table.sort(values)
  return {tostring(sum / n), tostring(values[math.min(n, math.floor(0.95 * n) + 1)]), n}
end

local out = {}
for i = 4, #ARGV do
  local q = ARGV[i]
  local c, f, r = {}, {}, {}
  for m = minute - window + 1, minute do
    local v = redis.call('HMGET', qkey(p, q, 'stats', m), 'completed', 'failed', 'retried')
    c[#c + 1] = v[1] or '0'
    f[#f + 1] = v[2] or '0'
    r[#r + 1] = v[3] or '0'
  end
  out[#out + 1] = {
    redis.call('ZCARD', skey(p, q, 'wait')), redis.call('ZCARD', skey(p, q, 'active')),
    redis.call('ZCARD', skey(p, q, 'completed')), redis.call('ZCARD', skey(p, q, 'failed')),
    redis.call('ZCARD', skey(p, q, 'delayed')), redis.call('EXISTS', skey(p, q, 'paused')),
    table.concat(c, ','), table.concat(f, ','), table.concat(r, ','),
    summary(qkey(p, q, 'durations')), summary(qkey(p, q, 'waits')),
    redis.call('ZCARD', skey(p, q, 'waiting-children')),
  }
end
return out
