-- Waiting jobs whose message is gone: sent again. A job's message can leave Redis without
-- its job being claimed only through a path take.lua does not cover (a stock kombu consumer
-- killed between its BRPOP and its claim, a failover that lost writes); this is the backstop.
-- A queue is checked only when none of its lists holds a message and it is not paused: then
-- a job waiting for more than `grace` ms has nothing left to carry it. Cheap whatever the
-- backlog: a busy queue costs its LLENs, and at most `limit` jobs are sent per queue per call.
-- ARGV: prefix, maxlen, grace ms, limit, then per queue: queue, n lists, lists...
-- Returns the ids sent again.
local p, maxlen, grace, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local sent = {}
local i = 5
while i <= #ARGV do
  local q, n = ARGV[i], tonumber(ARGV[i + 1])
  local idle = redis.call('EXISTS', skey(p, q, 'paused')) == 0
  for j = i + 2, i + 1 + n do
    if idle and redis.call('LLEN', ARGV[j]) > 0 then idle = false end
  end
  if idle then
    local ids = redis.call('ZRANGEBYSCORE', skey(p, q, 'wait'), '-inf', now - grace, 'LIMIT', 0, limit)
    for _, id in ipairs(ids) do
      local f = redis.call('HMGET', jkey(p, q, id), 'state', 'group')
      -- A grouped job's message waits in its group's list, not the broker's: resent only
      -- when that list is empty.
      if f[1] == 'waiting' and not (f[2] and
          redis.call('LLEN', qkey(p, q, 'gjobs', f[2])) > 0) then
        redis.call('ZREM', skey(p, q, 'wait'), id)
        make_waiting(p, q, id, now, maxlen)
        sent[#sent + 1] = id
      end
    end
  end
  i = i + 2 + n
end
return sent
