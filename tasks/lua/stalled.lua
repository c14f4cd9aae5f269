-- Active jobs whose lock expired lost their worker (SIGKILL, OOM, a lost host): run them
-- again, up to the stall limit, then fail them saying so.
-- ARGV: prefix, queue, max stalled, maxlen, keep failed, age ms
-- Returns the ids found stalled.
local p, q, max_stalled, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local found = {}
for _, id in ipairs(redis.call('ZRANGE', skey(p, q, 'active'), 0, -1)) do
  if redis.call('EXISTS', qkey(p, q, 'lock', id)) == 0 then
    local k = jkey(p, q, id)
    redis.call('ZREM', skey(p, q, 'active'), id)
    local group = redis.call('HGET', k, 'group')
    if group then group_left_active(p, q, group, id) end
    redis.call('HDEL', k, 'token')
    local stalls = redis.call('HINCRBY', k, 'stalledCount', 1)
    found[#found + 1] = id
    if stalls > max_stalled then
      local reason = 'job stalled more than allowable limit (' .. max_stalled .. ')'
      redis.call('HSET', k, 'state', 'failed', 'finishedOn', now, 'failedReason', reason)
      redis.call('ZADD', skey(p, q, 'failed'), now, id)
      count_minute(p, q, now, 'failed', 1)
      emit(p, q, maxlen, 'failed', id, 'failedReason', reason)
      trim(p, q, 'failed', id, tonumber(ARGV[5]), tonumber(ARGV[6]), now)
    else
      emit(p, q, maxlen, 'stalled', id, 'stalledCount', stalls)
      make_waiting(p, q, id, now, maxlen)
    end
  end
end
return found
