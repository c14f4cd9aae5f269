-- Move due delayed jobs of every given queue to waiting (and so to the broker).
-- ARGV: prefix, maxlen, limit per queue, queue...
-- Returns the earliest remaining due time in ms (or -1), and how many were moved.
local p, maxlen, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local moved, next_due = 0, -1
for i = 4, #ARGV do
  local q = ARGV[i]
  local set = skey(p, q, 'delayed')
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', set, id)
    if redis.call('HGET', jkey(p, q, id), 'state') == 'delayed' then
      make_waiting(p, q, id, now, maxlen)
      moved = moved + 1
    end
  end
  local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
  if first[2] and (next_due < 0 or tonumber(first[2]) < next_due) then
    next_due = tonumber(first[2])
  end
end
return {next_due, moved, now}
