-- Create a flow: a tree of jobs in any queues, written in this one script so that no parent
-- exists without its children nor a child without its parent (BullMQ's addParentJob, for
-- a whole tree). A job with children waits in `waiting-children`; a leaf is sent (or
-- delayed) as enqueue.lua sends it. Every id is checked before anything is written.
-- ARGV: prefix, maxlen, count, then per job (parents before their children) 13 values:
--   queue, id, name, data, opts, priority step, timelimit json, delay ms, attempts, lifo,
--   parent ("queue/id", '' for the root), ignore its failure ('1'/'0'), children count
-- Returns {0} when the root's id exists (idempotency: nothing written), {-1, "queue/id"}
-- when another job's id exists (nothing written), else per job the state it was created
-- in: 1 waiting, 2 paused, 3 delayed, 5 waiting-children.
local p, maxlen, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local W = 13
for i = 0, n - 1 do
  local b = 4 + i * W
  if redis.call('EXISTS', jkey(p, ARGV[b], ARGV[b + 1])) == 1 then
    if i == 0 then return {0} end
    return {-1, ARGV[b] .. '/' .. ARGV[b + 1]}
  end
end
local now = now_ms()
local created = {}
for i = 0, n - 1 do
  local b = 4 + i * W
  local q, id, parent = ARGV[b], ARGV[b + 1], ARGV[b + 10]
  local k = jkey(p, q, id)
  redis.call('HSET', k, 'name', ARGV[b + 2], 'data', ARGV[b + 3], 'opts', ARGV[b + 4],
             'priority', ARGV[b + 5], 'tl', ARGV[b + 6], 'attempts', ARGV[b + 8],
             'attemptsMade', 0, 'createdAt', now)
  if ARGV[b + 9] == '1' then redis.call('HSET', k, 'lifo', 1) end
  if parent ~= '' then
    redis.call('HSET', k, 'parent', parent)
    if ARGV[b + 11] == '1' then redis.call('HSET', k, 'idof', 1) end
    local pq, pid = string.match(parent, '^([^/]*)/(.*)$')
    redis.call('SADD', qkey(p, pq, 'deps', pid), q .. '/' .. id)
  end
  local delay = tonumber(ARGV[b + 7])
  if tonumber(ARGV[b + 12]) > 0 then
    -- Its own delay counts from when its children are done.
    if delay > 0 then redis.call('HSET', k, 'flowDelay', delay) end
    redis.call('HSET', k, 'state', 'waiting-children')
    redis.call('ZADD', skey(p, q, 'waiting-children'), now, id)
    emit(p, q, maxlen, 'waiting-children', id)
    created[#created + 1] = 5
  elseif delay > 0 then
    make_delayed(p, q, id, now + delay, maxlen, 'delayed')
    created[#created + 1] = 3
  else
    make_waiting(p, q, id, now, maxlen)
    if redis.call('EXISTS', skey(p, q, 'paused')) == 1 then
      created[#created + 1] = 2
    else
      created[#created + 1] = 1
    end
  end
end
return created
