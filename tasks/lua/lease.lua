-- A leader lease. ARGV: prefix, name, owner, ttl ms, 'hold' | 'release'.
-- hold: take the lease if free, or extend it if ours; returns 1 if we hold it.
local key = gkey(ARGV[1], 'lease', ARGV[2])
if ARGV[5] == 'release' then
  if redis.call('GET', key) == ARGV[3] then redis.call('DEL', key) end
  return 0
end
if redis.call('GET', key) == ARGV[3] then
  redis.call('PEXPIRE', key, ARGV[4])
  return 1
end
if redis.call('SET', key, ARGV[3], 'NX', 'PX', ARGV[4]) then return 1 end
return 0
