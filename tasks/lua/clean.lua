-- Remove up to `limit` jobs in `state` that finished (or were created) over `grace` ms ago.
-- A flow's child removed pending no longer holds its parent back (flows.lua).
-- ARGV: prefix, queue, grace ms, limit, state set name, maxlen. Returns the ids removed.
local p, q, grace, limit, set = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local maxlen = ARGV[6]
local key = skey(p, q, set)
local ids = redis.call('ZRANGEBYSCORE', key, '-inf', now_ms() - grace, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  redis.call('ZREM', key, id)
  if set == 'wait' then redis.call('LREM', skey(p, q, 'parked'), 0, id) end
  child_removed(p, q, id, maxlen)
  drop_job(p, q, id)
end
return ids
