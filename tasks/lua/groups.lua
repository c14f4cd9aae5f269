-- Operators' acts on a queue's groups (prelude_groups.lua).
-- ARGV: prefix, queue, op, then by op:
--   'pause' group | 'resume' group: the group's flag, kept in Redis (survives restarts);
--   'limits' group concurrency rateMax rateMs: the group's own limits ('' clears one; a
--     group '' sets the queue's defaults for every group);
--   'counts' group...: per group {group, waiting, active, paused, concurrency, rateMax,
--     rateMs}, the limits being the group's own or nil; every known group when none given.
-- A change that may let a group start jobs puts it back in the ring and wakes a consumer.
local p, q, op = ARGV[1], ARGV[2], ARGV[3]

local function reconsider(g)
  if redis.call('LLEN', qkey(p, q, 'gjobs', g)) > 0 then
    group_enter_ring(p, q, g)
    ring(p, q)
  end
end

if op == 'pause' then
  redis.call('HSET', qkey(p, q, 'group', ARGV[4]), 'paused', 1)
  redis.call('SADD', qkey(p, q, 'groups'), ARGV[4])
  return 1
end
if op == 'resume' then
  redis.call('HDEL', qkey(p, q, 'group', ARGV[4]), 'paused')
  reconsider(ARGV[4])
  group_forget_if_idle(p, q, ARGV[4])
  return 1
end
if op == 'limits' then
  local g = ARGV[4]
  local key = g == '' and qkey(p, q, 'gconf') or qkey(p, q, 'group', g)
  local names = {'concurrency', 'rateMax', 'rateMs'}
  for i, name in ipairs(names) do
    local value = ARGV[4 + i]
    if value == '' then redis.call('HDEL', key, name) else redis.call('HSET', key, name, value) end
  end
  if g == '' then
    for _, each in ipairs(redis.call('SMEMBERS', qkey(p, q, 'groups'))) do reconsider(each) end
  else
    redis.call('SADD', qkey(p, q, 'groups'), g)
    reconsider(g)
    group_forget_if_idle(p, q, g)
  end
  return 1
end
if op == 'counts' then
  local wanted = {}
  for i = 4, #ARGV do wanted[#wanted + 1] = ARGV[i] end
  if #wanted == 0 then wanted = redis.call('SMEMBERS', qkey(p, q, 'groups')) end
  local out = {}
  for _, g in ipairs(wanted) do
    local s = redis.call('HMGET', qkey(p, q, 'group', g), 'paused', 'concurrency', 'rateMax',
                         'rateMs')
    out[#out + 1] = {g, redis.call('SCARD', qkey(p, q, 'gwait', g)),
                     redis.call('SCARD', qkey(p, q, 'gactive', g)), s[1] and 1 or 0,
                     s[2], s[3], s[4]}
  end
  local conf = redis.call('HMGET', qkey(p, q, 'gconf'), 'concurrency', 'rateMax', 'rateMs')
  return {out, conf}
end
return redis.error_reply('groups.lua: unknown op ' .. tostring(op))
