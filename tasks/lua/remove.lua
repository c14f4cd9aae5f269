-- Remove jobs. An active job is refused (its worker holds it): returns per id 1, 0 (not
-- found) or -1 (active). ARGV: prefix, queue, maxlen, id...
local p, q, maxlen = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local k = jkey(p, q, id)
  local state = redis.call('HGET', k, 'state')
  if not state then
    out[#out + 1] = 0
  elseif state == 'active' then
    out[#out + 1] = -1
  else
    local set = STATE_SET[state]
    redis.call('ZREM', skey(p, q, set), id)
    redis.call('LREM', skey(p, q, 'parked'), 0, id)
    child_removed(p, q, id, maxlen)
    drop_job(p, q, id)
    emit(p, q, maxlen, 'removed', id)
    out[#out + 1] = 1
  end
end
return out
