-- Flows (BullMQ's FlowProducer): a parent job waits in `waiting-children` until each of its
-- children finished, then goes on to waiting (or delayed by its own delay). Sent after the
-- prelude with every script, so that each end of a job updates its parent in the same
-- script, atomically. See docs/flows.md.
--
-- A child's hash holds `parent` ("queue/id") and `idof` ('1': its failure is ignored). A
-- parent owns, besides its hash (keys.PARENT_KEYS): `deps`, the children still pending;
-- `processed`, each completed child's return value (kept on the parent's side, so that a
-- child's retention never deletes a value before the parent read it); `child_failures`,
-- each failed child's reason. A parent's hash holds `flowDelay` (its own delay, counted
-- from when its children are done) and, once a child failed it, `failedChild`.
-- A job without a parent costs one HMGET field on completion (read with `msg`).

local function split_ref(ref)
  return string.match(ref, '^([^/]*)/(.*)$')
end

-- Every child is done: the parent goes on to waiting, or delayed by its own delay.
local function release_parent(p, pq, pid, now, maxlen)
  local k = jkey(p, pq, pid)
  local f = redis.call('HMGET', k, 'state', 'flowDelay')
  if f[1] ~= 'waiting-children' then return end
  redis.call('ZREM', skey(p, pq, 'waiting-children'), pid)
  local delay = tonumber(f[2]) or 0
  if delay > 0 then
    make_delayed(p, pq, pid, now + delay, maxlen, 'delayed')
  else
    make_waiting(p, pq, pid, now, maxlen)
  end
end

local function release_if_done(p, pq, pid, now, maxlen)
  if redis.call('SCARD', qkey(p, pq, 'deps', pid)) == 0 then
    release_parent(p, pq, pid, now, maxlen)
  end
end

child_completed = function(p, parent, ref, returnvalue, now, maxlen)
  local pq, pid = split_ref(parent)
  -- Not pending (the parent was removed, or this is a retried child already counted).
  if redis.call('SREM', qkey(p, pq, 'deps', pid), ref) == 0 then return end
  redis.call('HSET', qkey(p, pq, 'processed', pid), ref, returnvalue)
  release_if_done(p, pq, pid, now, maxlen)
end

-- Child `ref` of `parent` failed for good with `reason`: ignored (`ignore`), or the parent
-- fails naming it, and so on up the tree.
local function child_failed(p, parent, ref, reason, ignore, now, maxlen)
  local pq, pid = split_ref(parent)
  if redis.call('SREM', qkey(p, pq, 'deps', pid), ref) == 0 then return end
  redis.call('HSET', qkey(p, pq, 'child_failures', pid), ref, reason)
  if ignore then
    release_if_done(p, pq, pid, now, maxlen)
    return
  end
  local k = jkey(p, pq, pid)
  if redis.call('HGET', k, 'state') ~= 'waiting-children' then return end
  local why = 'child ' .. ref .. ' failed: ' .. reason
  redis.call('ZREM', skey(p, pq, 'waiting-children'), pid)
  redis.call('HSET', k, 'state', 'failed', 'finishedOn', now, 'failedReason', why,
             'failedChild', ref)
  redis.call('ZADD', skey(p, pq, 'failed'), now, pid)
  count_minute(p, pq, now, 'failed', 1)
  emit(p, pq, maxlen, 'failed', pid, 'failedReason', why)
  failed_for_good(p, pq, pid, why, now, maxlen)
end

failed_for_good = function(p, q, id, reason, now, maxlen)
  local f = redis.call('HMGET', jkey(p, q, id), 'parent', 'idof')
  if f[1] then child_failed(p, f[1], q .. '/' .. id, reason, f[2] == '1', now, maxlen) end
end

-- Job `id` is about to be removed (remove.lua, clean.lua): a pending child no longer holds
-- its parent back (BullMQ's removeParentDependencyKey).
local function child_removed(p, q, id, maxlen)
  local parent = redis.call('HGET', jkey(p, q, id), 'parent')
  if not parent then return end
  local pq, pid = split_ref(parent)
  if redis.call('SREM', qkey(p, pq, 'deps', pid), q .. '/' .. id) == 1 then
    release_if_done(p, pq, pid, now_ms(), maxlen)
  end
end

-- Job `id` of `q` is pending again (an operator retried it): pending for its parent again,
-- and a parent that it failed waits for it again, and so on up the tree.
local function revive_in_parent(p, q, id, now, maxlen)
  local parent = redis.call('HGET', jkey(p, q, id), 'parent')
  if not parent then return end
  local pq, pid = split_ref(parent)
  local ref = q .. '/' .. id
  if redis.call('HDEL', qkey(p, pq, 'child_failures', pid), ref) == 0 then return end
  redis.call('SADD', qkey(p, pq, 'deps', pid), ref)
  local pk = jkey(p, pq, pid)
  local f = redis.call('HMGET', pk, 'state', 'failedChild')
  if f[1] == 'failed' and f[2] == ref then
    redis.call('ZREM', skey(p, pq, 'failed'), pid)
    redis.call('HDEL', pk, 'failedChild', 'finishedOn', 'failedReason')
    redis.call('HSET', pk, 'state', 'waiting-children')
    redis.call('ZADD', skey(p, pq, 'waiting-children'), now, pid)
    emit(p, pq, maxlen, 'waiting-children', pid)
    revive_in_parent(p, pq, pid, now, maxlen)
  end
end

-- A failed job retried by an operator (retry.lua), before it is sent again. Returns true
-- when it is a parent with children still pending: it waits for them instead of running.
-- Retrying the child that failed a flow resumes the flow (revive_in_parent).
local function flow_retried(p, q, id, now, maxlen)
  local k = jkey(p, q, id)
  redis.call('HDEL', k, 'failedChild')
  revive_in_parent(p, q, id, now, maxlen)
  if redis.call('SCARD', qkey(p, q, 'deps', id)) > 0 then
    redis.call('HSET', k, 'state', 'waiting-children')
    redis.call('ZADD', skey(p, q, 'waiting-children'), now, id)
    emit(p, q, maxlen, 'waiting-children', id)
    return true
  end
  return false
end
