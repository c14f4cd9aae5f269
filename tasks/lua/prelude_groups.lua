-- Groups (BullMQ Pro's groups: tenant fairness). Shared by every script, after prelude.lua.
-- A grouped job's message waits in its group's list (`gjobs`), not in the broker lists; the
-- group's name sits in the queue's ring (`gring`) while it may have a job to start. take.lua
-- rotates the ring, serving one job per group in turn, and drops from it a group that is
-- paused, at its concurrency limit, over its rate (into `glimited` until a slot frees) or
-- empty. A group re-enters the ring when a job is sent to it, when one of its jobs stops
-- being active, when it is resumed and when its rate allows again. An ungrouped job never
-- reads any of these keys (the `group` field it lacks is read with fields read anyway).
-- A group's `r` field says it is in the ring: it is there at most once.

local function group_enter_ring(p, q, g)
  if redis.call('HSETNX', qkey(p, q, 'group', g), 'r', 1) == 1 then
    redis.call('RPUSH', qkey(p, q, 'gring'), g)
  end
end

-- A group with no waiting or active job and no settings of its own is forgotten (its
-- list then holds only stale copies of removed jobs, if anything).
local function group_forget_if_idle(p, q, g)
  if redis.call('SCARD', qkey(p, q, 'gwait', g)) == 0
      and redis.call('SCARD', qkey(p, q, 'gactive', g)) == 0
      and redis.call('EXISTS', qkey(p, q, 'group', g)) == 0 then
    redis.call('SREM', qkey(p, q, 'groups'), g)
    redis.call('DEL', qkey(p, q, 'gjobs', g), qkey(p, q, 'glimiter', g))
  end
end

-- A message of job `id` was pushed to group g's list (publish() in prelude.lua).
group_entered = function(p, q, g, id)
  redis.call('SADD', qkey(p, q, 'gwait', g), id)
  -- A group in the ring is known already (it is forgotten only out of the ring): a busy
  -- group's job costs two writes here, its id and its message.
  if redis.call('HSETNX', qkey(p, q, 'group', g), 'r', 1) == 1 then
    redis.call('SADD', qkey(p, q, 'groups'), g)
    redis.call('RPUSH', qkey(p, q, 'gring'), g)
  end
end

-- Job `id` of group g is no longer active (ended, stalled, released, handed back): its
-- slot is free, so the group may start another.
group_left_active = function(p, q, g, id)
  redis.call('SREM', qkey(p, q, 'gactive', g), id)
  if redis.call('LLEN', qkey(p, q, 'gjobs', g)) > 0 then
    group_enter_ring(p, q, g)
    ring(p, q)
  else
    group_forget_if_idle(p, q, g)
  end
end

-- The group just rotated to the ring's tail leaves the ring.
local function group_evict(p, q, g)
  redis.call('RPOP', qkey(p, q, 'gring'))
  redis.call('HDEL', qkey(p, q, 'group', g), 'r')
end

-- The next message of queue q's groups, in turn: returns the group's list, the message,
-- the group and its rate window in ms (0: no rate limit), or nil when no group may start
-- a job now. Limits: the group's own (`concurrency`, `rateMax`, `rateMs` on its hash),
-- else the queue's (`gconf`); 0 or none: no limit.
local function group_next(p, q, now)
  local ring_key, limited = qkey(p, q, 'gring'), qkey(p, q, 'glimited')
  for _, g in ipairs(redis.call('ZRANGEBYSCORE', limited, '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', limited, g)
    group_enter_ring(p, q, g)
  end
  local conf = redis.call('HMGET', qkey(p, q, 'gconf'), 'concurrency', 'rateMax', 'rateMs')
  for _ = 1, redis.call('LLEN', ring_key) do
    local g = redis.call('LMOVE', ring_key, ring_key, 'LEFT', 'RIGHT')
    if not g then return nil end
    local s = redis.call('HMGET', qkey(p, q, 'group', g), 'paused', 'concurrency', 'rateMax',
                         'rateMs')
    local limit = tonumber(s[2] or conf[1]) or 0
    local rate_max, rate_ms = tonumber(s[3] or conf[2]) or 0, tonumber(s[4] or conf[3]) or 0
    local blocked = s[1] ~= false
    if not blocked and limit > 0 then
      blocked = redis.call('SCARD', qkey(p, q, 'gactive', g)) >= limit
    end
    if not blocked and rate_max > 0 and rate_ms > 0 then
      local log = qkey(p, q, 'glimiter', g)
      redis.call('ZREMRANGEBYSCORE', log, '-inf', now - rate_ms)
      if redis.call('ZCARD', log) >= rate_max then
        local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
        redis.call('ZADD', limited, tonumber(oldest[2]) + rate_ms, g)
        blocked = true
      end
    else
      rate_ms = 0
    end
    if blocked then
      group_evict(p, q, g)
    else
      local list = qkey(p, q, 'gjobs', g)
      local raw = redis.call('RPOP', list)
      if raw then
        if redis.call('LLEN', list) == 0 then group_evict(p, q, g) end
        return list, raw, g, rate_ms
      end
      group_evict(p, q, g)
      group_forget_if_idle(p, q, g)
    end
  end
  return nil
end

-- A job of group g started: its start goes in the group's rate log.
local function group_started(p, q, g, rate_ms, now, token)
  local log = qkey(p, q, 'glimiter', g)
  redis.call('ZADD', log, now, token)
  redis.call('PEXPIRE', log, rate_ms * 2)
end
