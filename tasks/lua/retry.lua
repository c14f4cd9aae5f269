-- Failed jobs back to waiting with a fresh attempt budget.
-- ARGV: prefix, queue, maxlen, id... (none: the oldest 1000 failed). Returns ids retried.
local p, q, maxlen = ARGV[1], ARGV[2], ARGV[3]
local ids = {}
if #ARGV > 3 then
  for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', skey(p, q, 'failed'), 0, 999)
end
local now = now_ms()
local done = {}
for _, id in ipairs(ids) do
  local k = jkey(p, q, id)
  if redis.call('HGET', k, 'state') == 'failed' then
    redis.call('ZREM', skey(p, q, 'failed'), id)
    redis.call('HSET', k, 'attemptsMade', 0, 'stalledCount', 0, 'attemptsStarted', 0)
    redis.call('HDEL', k, 'finishedOn', 'delayUntil', 'cancelRequested')
    if not flow_retried(p, q, id, now, maxlen) then make_waiting(p, q, id, now, maxlen) end
    done[#done + 1] = id
  end
end
return done
