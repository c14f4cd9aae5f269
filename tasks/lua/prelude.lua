-- Shared by every script (prepended by tasks/scripts.py, after the key tables generated from
-- tasks/keys.py). Keys are built here from a prefix and the queue name, and only by these
-- functions: the registry assumes one Redis (or a Sentinel master), not a Cluster.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A queue's key `name` (QUEUE_KEYS), followed by `part` (a job id, a minute) if given.
local function qkey(p, q, name, part)
  local suffix = QUEUE_KEYS[name] or error('unknown queue key ' .. tostring(name))
  if part then return p .. q .. suffix .. part end
  return p .. q .. suffix
end
local function gkey(p, name, part)
  local suffix = GLOBAL_KEYS[name] or error('unknown key ' .. tostring(name))
  return p .. suffix .. (part or '')
end
local function jkey(p, q, id) return qkey(p, q, 'job', id) end
local function skey(p, q, name) return qkey(p, q, name) end

-- Flows (tasks/lua/flows.lua, sent after this prelude): a child that finished for good
-- tells its parent. Declared here so that the prelude's ends of a job can call them.
local child_completed, failed_for_good

-- Job `id`'s hash, its log lines and the keys it owns as a flow's parent (keys.PARENT_KEYS),
-- appended to `into`: one DEL removes them all.
local function job_keys(p, q, id, into)
  into[#into + 1] = jkey(p, q, id)
  into[#into + 1] = qkey(p, q, 'logs', id)
  into[#into + 1] = qkey(p, q, 'deps', id)
  into[#into + 1] = qkey(p, q, 'processed', id)
  into[#into + 1] = qkey(p, q, 'child_failures', id)
  return into
end

-- Delete job `id`'s own keys (its hash, the keys it owns as a parent, its log lines): every
-- path that deletes a job goes through here or job_keys, so nothing of a job outlives it.
local function drop_job(p, q, id)
  redis.call('DEL', unpack(job_keys(p, q, id, {})))
end

-- Groups: defined in prelude_groups.lua (loaded after this file); declared here so that
-- publish(), claim_job() and end_attempt() below can keep a group's counts.
local group_entered, group_left_active

local function emit(p, q, maxlen, event, id, ...)
  redis.call('XADD', qkey(p, q, 'events'), 'MAXLEN', '~', maxlen, '*',
             'event', event, 'jobId', id, ...)
end

-- A Celery protocol-2 message, as kombu's Redis transport stores it, for a job whose
-- arguments live in the registry: the body carries none. Ids and names are restricted to
-- characters that need no JSON escaping (checked in Python before any script runs).
local BODY = '[[], {}, {\\"callbacks\\": null, \\"errbacks\\": null, \\"chain\\": null, \\"chord\\": null}]'

-- A message was sent to one of q's lists: wake an idle consumer (see tasks/worker/transport.py).
local function ring(p, q)
  local bell = qkey(p, q, 'bell')
  if redis.call('LLEN', bell) < BELLS_KEPT then redis.call('LPUSH', bell, 1) end
end

-- A job's message is its lean token `queue/id` (LEAN_MESSAGES, the default): the consumer
-- (take.lua, tasks/messages.py) builds the Celery message from the job hash as it claims the
-- job, so a waiting job costs its hash and about 45 bytes in the list instead of a second,
-- mostly empty copy of everything (850 bytes). A token never starts with `{`, which every
-- kombu message does. With LEAN_MESSAGES off (a rolling deploy from a release that reads only
-- full messages), the full message is written as before.
-- A job enqueued with `lifo` goes to the consuming end of its list (kombu's consumers pop
-- from the right, take.lua too): it is the next of its priority to be taken.
local function publish(p, q, id)
  local k = jkey(p, q, id)
  local f = redis.call('HMGET', k, 'name', 'priority', 'tl', 'msg', 'lifo', 'group')
  local step = tonumber(f[2]) or 0
  local list = q
  if step > 0 then list = q .. BROKER_SEP .. step end
  local push = 'LPUSH'
  if f[5] then push = 'RPUSH' end
  local group = f[6]  -- a grouped job's message waits in its group's list (take.lua)
  if group then list = qkey(p, q, 'gjobs', group) end
  if LEAN_MESSAGES then
    redis.call(push, list, q .. '/' .. id)
    if group then group_entered(p, q, group, id) end
    ring(p, q)
    return
  end
  local tag = id .. '#' .. redis.call('HINCRBY', k, 'pub', 1)
  if f[4] then
    -- A job sent the Celery way (send.lua): its own message, canvas and all, under a fresh
    -- delivery tag (a worker may still hold the earlier copy's). kombu's json writes the
    -- tag last in the message, and a quote inside a value is escaped: one match.
    local msg = string.gsub(f[4], '"delivery_tag": "[^"]*"}}$', '"delivery_tag": "' .. tag .. '"}}')
    redis.call(push, list, msg)
    if group then group_entered(p, q, group, id) end
    ring(p, q)
    return
  end
  redis.call(push, list, '{"body": "' .. BODY .. '", "content-encoding": "utf-8", ' ..
    '"content-type": "application/json", "headers": {"lang": "py", "task": "' .. f[1] ..
    '", "id": "' .. id .. '", "shadow": null, "eta": null, "expires": null, "group": null, ' ..
    '"group_index": null, "retries": 0, "timelimit": ' .. (f[3] or '[null, null]') ..
    ', "root_id": "' .. id .. '", "parent_id": null, "argsrepr": "()", "kwargsrepr": "{}", ' ..
    '"origin": "jobyard", "ignore_result": true, "replaced_task_nesting": 0, ' ..
    '"stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "' .. id ..
    '", "reply_to": "", "delivery_mode": 2, "delivery_info": {"exchange": "", ' ..
    '"routing_key": "' .. q .. '"}, "priority": ' .. step ..
    ', "body_encoding": "utf-8", "delivery_tag": "' .. tag .. '"}}')
  if group then group_entered(p, q, group, id) end
  ring(p, q)
end

-- Into `waiting`: sent to the broker, or parked while the queue is paused.
local function make_waiting(p, q, id, now, maxlen)
  redis.call('HSET', jkey(p, q, id), 'state', 'waiting', 'waitingSince', now)
  redis.call('ZADD', skey(p, q, 'wait'), now, id)
  if redis.call('EXISTS', skey(p, q, 'paused')) == 1 then
    redis.call('RPUSH', skey(p, q, 'parked'), id)
  else
    publish(p, q, id)
  end
  emit(p, q, maxlen, 'waiting', id)
end

local function make_delayed(p, q, id, due, maxlen, event, ...)
  redis.call('HSET', jkey(p, q, id), 'state', 'delayed', 'delayUntil', due)
  redis.call('ZADD', skey(p, q, 'delayed'), due, id)
  emit(p, q, maxlen, event, id, 'delayUntil', due, ...)
end

-- Retention after job `id` finished: keep 0 removes just that job; otherwise keep the
-- newest `keep` (-1: all) and none older than `age` ms (0: no limit).
local function trim(p, q, state, id, keep, age, now)
  local set = skey(p, q, state)
  if keep == 0 then
    redis.call('ZREM', set, id)
    drop_job(p, q, id)
    return
  end
  local doomed = {}
  if age > 0 then
    local old = redis.call('ZRANGEBYSCORE', set, '-inf', now - age, 'LIMIT', 0, 1000)
    if #old > 0 then
      redis.call('ZREM', set, unpack(old))
      for _, old_id in ipairs(old) do job_keys(p, q, old_id, doomed) end
    end
  end
  if keep >= 0 then
    local excess = redis.call('ZCARD', set) - keep
    if excess > 0 then
      -- The oldest first: ZPOPMIN returns id, score pairs.
      local popped = redis.call('ZPOPMIN', set, math.min(excess, 1000))
      for i = 1, #popped, 2 do job_keys(p, q, popped[i], doomed) end
    end
  end
  if #doomed > 0 then redis.call('DEL', unpack(doomed)) end
end

local function count_minute(p, q, now, field, amount)
  local k = qkey(p, q, 'stats', math.floor(now / 60000))
  -- A total equal to this amount means the field (and maybe the key) was just made.
  if redis.call('HINCRBY', k, field, amount) == amount then
    redis.call('EXPIRE', k, 172800)
  end
end

-- Monotonic totals for Prometheus (tasks/prometheus.py): per queue and job type, never
-- expired or trimmed, so a scrape after a restart sees the same totals (a counter).
local function count_total(p, q, counter, name)
  redis.call('HINCRBY', qkey(p, q, 'total', counter), name or '', 1)
end

-- A job finished or left the queue for good in `field` ('completed' or 'failed'): the
-- minute's counter and the total, one home for both.
local function count_outcome(p, q, now, field, name)
  count_minute(p, q, now, field, 1)
  count_total(p, q, field, name)
end

-- One timing (ms) into its histogram: the bucket it falls in (non-cumulative; /metrics
-- sums them up), and the sum. The count is the buckets' sum.
local function observe(p, q, timing, name, ms)
  local k = qkey(p, q, 'hist', timing)
  local bucket = '+Inf'
  for _, bound in ipairs(HISTOGRAM_BUCKETS_MS) do
    if ms <= bound then bucket = tostring(bound); break end
  end
  name = name or ''
  redis.call('HINCRBY', k, name .. '\t' .. bucket, 1)
  redis.call('HINCRBY', k, name .. '\tsum', ms)
end

local function sample(p, q, name, value)
  local k = qkey(p, q, name)
  redis.call('LPUSH', k, value)
  redis.call('LTRIM', k, 0, 999)
end

-- The reason a cancelled job (cancel.lua set `cancelRequested`) fails with, however its
-- attempt ends: raised JobCancelled, returned, killed, stalled or handed back.
local CANCELLED = 'cancelled'

-- A cancelled job ends here: failed with reason CANCELLED, no retry (cancel.lua).
local function fail_cancelled(p, q, id, k, now, maxlen, keep, age, name)
  redis.call('HSET', k, 'state', 'failed', 'finishedOn', now, 'failedReason', CANCELLED)
  redis.call('ZADD', skey(p, q, 'failed'), now, id)
  count_outcome(p, q, now, 'failed', name)
  emit(p, q, maxlen, 'failed', id, 'failedReason', CANCELLED)
  failed_for_good(p, q, id, CANCELLED, now, maxlen)
  trim(p, q, 'failed', id, keep, age, now)
end

-- End the running attempt held by `token`: returns the job key, now, attempts made, the job
-- type's name and
-- whether the job was cancelled meanwhile, or nil when the token no longer holds the job
-- (it was found stalled and handed on).
local function end_attempt(p, q, id, token)
  local k = jkey(p, q, id)
  local f = redis.call('HMGET', k, 'token', 'state', 'processedOn', 'name', 'cancelRequested', 'group')
  if f[1] ~= token or f[2] ~= 'active' then return nil end
  local now = now_ms()
  local took = now - tonumber(f[3])
  redis.call('ZREM', skey(p, q, 'active'), id)
  if f[6] then group_left_active(p, q, f[6], id) end
  redis.call('DEL', qkey(p, q, 'lock', id))
  redis.call('HDEL', k, 'token', 'resent', 'resentDue', 'handedBackSince')
  count_minute(p, q, now, 'ms', took)
  sample(p, q, 'durations', took)
  observe(p, q, 'processing', f[4], took)
  return k, now, redis.call('HINCRBY', k, 'attemptsMade', 1), f[4], f[5] ~= false
end

-- Take job `id` for an attempt if it is still waiting and allowed to start. Shared by
-- claim.lua (a message the worker already holds) and take.lua (pop and claim as one step).
-- A job is started at most attempts + max_stalled times, whatever ended its runs (failures,
-- stalls, cut-offs, dead processes): one past that fails it instead of running it.
-- Returns {'ok', name, data, opts, attemptsMade, attempts, createdAt}
--      or {'missing'} | {'skip', state} | {'paused'} | {'limited', due} | {'exhausted'}
local function claim_job(p, q, id, worker, token, lock_ms, maxlen, rate_max, rate_ms, max_stalled)
  local k = jkey(p, q, id)
  local f = redis.call('HMGET', k, 'state', 'name', 'data', 'opts', 'attemptsMade', 'attempts',
                       'createdAt', 'waitingSince', 'group')
  local state = f[1]
  if not state then return {'missing'} end
  -- Redelivery, a second copy, or a copy that outlived a restart: the effect happens once.
  if state ~= 'waiting' then return {'skip', state} end
  -- Parked, delayed, failed or active from here on: no longer waiting in its group.
  if f[9] then redis.call('SREM', qkey(p, q, 'gwait', f[9]), id) end
  if redis.call('EXISTS', skey(p, q, 'paused')) == 1 then
    redis.call('RPUSH', skey(p, q, 'parked'), id)
    return {'paused'}
  end
  local now = now_ms()
  if rate_max > 0 then
    -- A sliding log of start times: no window of rate_ms ever holds more than rate_max.
    local log = skey(p, q, 'limiter')
    redis.call('ZREMRANGEBYSCORE', log, '-inf', now - rate_ms)
    if redis.call('ZCARD', log) >= rate_max then
      local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
      local due = tonumber(oldest[2]) + rate_ms
      redis.call('ZREM', skey(p, q, 'wait'), id)
      make_delayed(p, q, id, due, maxlen, 'delayed', 'reason', 'rate limit')
      count_total(p, q, 'rate_limited', f[2])
      return {'limited', due}
    end
    redis.call('ZADD', log, now, token)
    redis.call('PEXPIRE', log, rate_ms * 2)
  end
  redis.call('ZREM', skey(p, q, 'wait'), id)
  local started = redis.call('HINCRBY', k, 'attemptsStarted', 1)
  -- attempts 0: a plain Celery task retrying without a limit (Celery counts its retries).
  local attempts = tonumber(f[6]) or 1
  local budget = attempts + max_stalled
  if attempts > 0 and started > budget then
    local reason = 'started ' .. (started - 1) .. ' times, the most its attempts (' .. f[6] ..
                   ') and stalls allowed (' .. max_stalled .. ') permit'
    redis.call('HSET', k, 'state', 'failed', 'finishedOn', now, 'failedReason', reason)
    redis.call('ZADD', skey(p, q, 'failed'), now, id)
    count_outcome(p, q, now, 'failed', f[2])
    emit(p, q, maxlen, 'failed', id, 'failedReason', reason)
    failed_for_good(p, q, id, reason, now, maxlen)
    return {'exhausted'}
  end
  redis.call('ZADD', skey(p, q, 'active'), now, id)
  if f[9] then redis.call('SADD', qkey(p, q, 'gactive', f[9]), id) end
  redis.call('HSET', k, 'state', 'active', 'processedOn', now, 'worker', worker, 'token', token)
  redis.call('SET', qkey(p, q, 'lock', id), token, 'PX', lock_ms)
  local waited = now - tonumber(f[8] or f[7])
  sample(p, q, 'waits', waited)
  observe(p, q, 'waiting', f[2], waited)
  emit(p, q, maxlen, 'active', id, 'worker', worker)
  return {'ok', f[2], f[3], f[4], f[5], f[6], f[7]}
end

-- An attempt succeeded: complete.lua, or take.lua carrying the last job of a solo worker.
-- Returns 1, 0 when `token` no longer holds the job (it was found stalled), or 2 when the
-- job was cancelled while it ran: it fails CANCELLED and its value is dropped (a pool that
-- cannot end a running job, -P solo or threads, ends its cancelled jobs this way). Failed
-- retention is not applied here (this script knows the completed one): the next failure
-- of the queue trims.
local function complete_job(p, q, id, token, returnvalue, keep, age, maxlen)
  local k, now, _, name, cancelled = end_attempt(p, q, id, token)
  if not k then return 0 end
  if cancelled then
    fail_cancelled(p, q, id, k, now, maxlen, -1, 0, name)
    return 2
  end
  redis.call('HSET', k, 'state', 'completed', 'finishedOn', now, 'returnvalue', returnvalue)
  redis.call('ZADD', skey(p, q, 'completed'), now, id)
  count_outcome(p, q, now, 'completed', name)
  emit(p, q, maxlen, 'completed', id, 'returnvalue', returnvalue)
  -- A job enqueued the registry's way stores no Celery result (its message says
  -- ignore_result): tell a Celery client waiting on AsyncResult(id).get() through the
  -- result backend's channel. A job sent the Celery way has its result stored by Celery.
  local f = redis.call('HMGET', k, 'msg', 'parent')
  if not f[1] then
    redis.call('PUBLISH', RESULT_CHANNEL .. id, '{"status": "SUCCESS", "result": ' ..
               returnvalue .. ', "traceback": null, "children": [], "date_done": null, ' ..
               '"task_id": "' .. id .. '"}')
  end
  -- A flow's child: its value goes to the parent's side before retention may delete it.
  if f[2] then child_completed(p, f[2], q .. '/' .. id, returnvalue, now, maxlen) end
  trim(p, q, 'completed', id, keep, age, now)
  return 1
end
