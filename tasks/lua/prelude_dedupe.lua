-- Deduplication windows and debounce (BullMQ's deduplication modes), for scripts that create
-- jobs. `spec` is the job's decoded feature table (tasks/enqueue.py `_features`):
--   dk, dt: dedupe key and ttl ms: while the key lives, an enqueue with it returns the job
--           that set it (whatever that job's state now, even gone) and creates nothing;
--   bk, bd: debounce key and delay ms: the job is delayed by bd; while it is still delayed,
--           an enqueue with the key replaces its data and options and restarts its delay.
-- A debounce key outlives its job's delay by DEBOUNCE_GRACE_MS, so that a job promoted late
-- (no worker running) is still found; whether it is replaced is decided by its state.
local DEBOUNCE_GRACE_MS = 3600000

-- The job an enqueue with `spec` stands for, if one exists: returns nil (create the job),
-- or code, id: 0 (dedupe: that job is the answer) or 5 (debounce: that job took the data).
-- `fields` are the job hash's fields to replace (name, data, opts, ...), as enqueue sets them.
local function dedupe_existing(p, q, spec, now, maxlen, fields)
  if spec.dk then
    local first = redis.call('GET', qkey(p, q, 'dedupe', spec.dk))
    if first then return 0, first end
  end
  if spec.bk then
    local key = qkey(p, q, 'debounce', spec.bk)
    local current = redis.call('GET', key)
    if current and redis.call('HGET', jkey(p, q, current), 'state') == 'delayed' then
      local due = now + spec.bd
      redis.call('HSET', jkey(p, q, current), 'delayUntil', due, unpack(fields))
      redis.call('ZADD', skey(p, q, 'delayed'), due, current)
      redis.call('PEXPIRE', key, spec.bd + DEBOUNCE_GRACE_MS)
      emit(p, q, maxlen, 'delayed', current, 'delayUntil', due, 'reason', 'debounced')
      return 5, current
    end
  end
  return nil
end

-- Job `id` was created with `spec`: it now holds its keys for their windows.
local function dedupe_created(p, q, spec, id)
  if spec.dk then redis.call('SET', qkey(p, q, 'dedupe', spec.dk), id, 'PX', spec.dt) end
  if spec.bk then
    redis.call('SET', qkey(p, q, 'debounce', spec.bk), id, 'PX', spec.bd + DEBOUNCE_GRACE_MS)
  end
end
