-- Active jobs whose lock expired lost their worker (SIGKILL, OOM, a lost host): run them
-- again, up to the stall limit, then fail them saying so.
-- An operator's recovery (Queue.recover_stalled) runs the same check at once, and with
-- mode 'fail' fails each such job instead of running it again (no retry).
-- ARGV: prefix, queue, max stalled, maxlen, keep failed, age ms[, mode]
-- Returns the ids found stalled.
local p, q, max_stalled, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local fail_all = ARGV[7] == 'fail'
local now = now_ms()
local found = {}
for _, id in ipairs(redis.call('ZRANGE', skey(p, q, 'active'), 0, -1)) do
  if redis.call('EXISTS', qkey(p, q, 'lock', id)) == 0 then
    local k = jkey(p, q, id)
    redis.call('ZREM', skey(p, q, 'active'), id)
    redis.call('HDEL', k, 'token')
    local stalls = redis.call('HINCRBY', k, 'stalledCount', 1)
    local name = redis.call('HGET', k, 'name')
    count_total(p, q, 'stalled', name or '')
    found[#found + 1] = id
    if redis.call('HEXISTS', k, 'cancelRequested') == 1 then
      -- Cancelled, and its worker died before ending it: it is not run again.
      fail_cancelled(p, q, id, k, now, maxlen, tonumber(ARGV[5]), tonumber(ARGV[6]), name or '')
    elseif stalls > max_stalled or fail_all then
      local reason = 'job stalled more than allowable limit (' .. max_stalled .. ')'
      if fail_all then reason = 'stalled: its worker was lost; failed by an operator' end
      redis.call('HSET', k, 'state', 'failed', 'finishedOn', now, 'failedReason', reason)
      redis.call('ZADD', skey(p, q, 'failed'), now, id)
      count_outcome(p, q, now, 'failed', name or '')
      emit(p, q, maxlen, 'failed', id, 'failedReason', reason)
      failed_for_good(p, q, id, reason, now, maxlen)
      trim(p, q, 'failed', id, tonumber(ARGV[5]), tonumber(ARGV[6]), now)
    else
      emit(p, q, maxlen, 'stalled', id, 'stalledCount', stalls)
      make_waiting(p, q, id, now, maxlen)
    end
  end
end
return found
