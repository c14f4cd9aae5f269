-- A worker's consumer asks for its next message: pop it from the broker lists and, for a
-- Jobyard job, claim the job in the same step (BullMQ's moveToActive). The job is active
-- under this worker's lock before the message leaves Redis, so no crash can lose it between
-- the pop and the claim, and no kombu unacked entry or ack is needed: complete/fail end it.
-- A message sent the Celery way (no job yet) gets kombu's unacked entry, as kombu would write.
-- Copies that must not run (a duplicate, a removed job, a paused queue, over the rate limit)
-- are dropped here and the next message is tried, up to `max pops` of them.
-- A worker running jobs in its consumer's thread (-P solo) first completes here the jobs it
-- just ran (BullMQ's moveToCompleted fetching the next job): one round trip per job.
-- ARGV: prefix, worker, token, lock ms, maxlen, unacked hash, unacked index, max pops,
--       max stalled, n done, then per done job: queue, id, token, returnvalue, keep, age ms;
--       n lists, lists... (in kombu's order: priority, then queue), then per queue with a
--       rate limit: queue, rate max, rate ms
-- Returns {done} when every list is empty (after dropping any copies), {done, 0} when
--         `max pops` copies were dropped and more may wait, {done, list, message} for a
--         Celery message, or for a job:
--         {done, list, message, name, data, opts, attemptsMade, attempts, createdAt}, and
--         for a job's lean token (the message) also its time limit and kept message, each
--         '' when the job has none;
--         `done` has a character per done job: 1 completed, 0 its lock was lost.
local p, worker, token = ARGV[1], ARGV[2], ARGV[3]
local lock_ms, maxlen = tonumber(ARGV[4]), ARGV[5]
local unacked, unacked_index = ARGV[6], ARGV[7]
local max_pops, max_stalled, n_done = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local done = {}
for i = 11, 10 + n_done * 6, 6 do
  done[#done + 1] = complete_job(p, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
                                 tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), maxlen)
end
done = table.concat(done)
local at = 11 + n_done * 6
local n = tonumber(ARGV[at])
local lmpop = {n}
for i = 1, n do lmpop[#lmpop + 1] = ARGV[at + i] end
lmpop[#lmpop + 1] = 'RIGHT'
local limits = {}
for i = at + 1 + n, #ARGV, 3 do limits[ARGV[i]] = {tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])} end

-- A message sent the Celery way: kombu's unacked entry, as kombu's QoS.append writes it.
-- A message kombu could not read either (not JSON, no delivery tag) is handed over as it
-- is, unrecorded: the consumer logs it and drops it, as stock kombu would fail on it.
local function as_celery(list, raw, message)
  local props = type(message) == 'table' and message.properties
  local info = type(props) == 'table' and props.delivery_info
  if type(info) ~= 'table' or type(props.delivery_tag) ~= 'string' then
    return {done, list, raw}
  end
  local t = redis.call('TIME')
  redis.call('ZADD', unacked_index, tonumber(t[1]) + tonumber(t[2]) / 1e6, props.delivery_tag)
  redis.call('HSET', unacked, props.delivery_tag, '[' .. raw .. ', ' ..
             cjson.encode(info.exchange) .. ', ' .. cjson.encode(info.routing_key) .. ']')
  return {done, list, raw}
end

-- Groups (prelude_groups.lua): the queues among these lists whose groups have jobs to
-- serve. A queue's first list is its own name (no separator); one EXISTS per queue is all
-- an ungrouped queue pays. Grouped and ungrouped jobs of a queue are served half and half,
-- by a coin: this take's token, random hex.
local group_queues = {}
for i = 1, n do
  local list = ARGV[at + i]
  if not string.find(list, BROKER_SEP, 1, true) and
      redis.call('EXISTS', qkey(p, list, 'gring'), qkey(p, list, 'glimited')) > 0 then
    group_queues[#group_queues + 1] = list
  end
end
local groups_first = #group_queues > 0 and tonumber(string.sub(token, -1), 16) % 2 == 0
local group_started_as  -- {queue, group, rate ms} of the grouped message being claimed

-- The next message of a group, as {list, message} (the list its queue's own: a worker
-- delivers it from there, and release.lua sends it back to its group), or nil.
local function pop_grouped()
  if #group_queues == 0 then return nil end
  local now = now_ms()
  for _, q in ipairs(group_queues) do
    local _, raw, g, rate_ms = group_next(p, q, now)
    if raw then
      group_started_as = {q, g, rate_ms}
      return q, raw
    end
  end
  return nil
end

local function decode(raw)
  local ok, message = pcall(cjson.decode, raw)
  if ok then return message end
end

for _ = 1, max_pops do
  local list, raw
  group_started_as = nil
  if groups_first then list, raw = pop_grouped() end
  if not raw then
    local popped = redis.call('LMPOP', unpack(lmpop))
    if popped then
      list, raw = popped[1], popped[2][1]
    elseif not groups_first then
      list, raw = pop_grouped()
    end
  end
  if not raw then return {done} end
  -- A job's lean token `queue/id` (publish() in prelude.lua): no kombu message starts
  -- otherwise than with `{`.
  local lean = string.byte(raw, 1) ~= 123
  local q, id
  if lean then
    q, id = string.match(raw, '^([^/]+)/(.+)$')
  else
    -- A job's full message (written by a release before lean messages, or with them off,
    -- or sent the Celery way through Jobyard's transport, which marks it `jobyard_job:
    -- queue/id`; kombu's json writes the same separators) is read without decoding it:
    -- quotes inside JSON strings are escaped, so these patterns cannot match inside a value.
    q, id = string.match(raw, '"jobyard_job": "([^"/]*)/([^"]*)"')
  end
  if not q and not lean then
    q = string.find(raw, '"origin": "jobyard"', 1, true) and
        string.match(raw, '"routing_key": "([^"]*)"')
    id = q and string.match(raw, '"id": "([^"]*)"')
  end
  if not id then return as_celery(list, raw, decode(raw)) end
  local limit = limits[q] or {0, 0}
  local claim = claim_job(p, q, id, worker, token, lock_ms, maxlen, limit[1], limit[2],
                          max_stalled)
  if claim[1] == 'ok' then
    local g = group_started_as
    if g and g[3] > 0 then group_started(p, g[1], g[2], g[3], now_ms(), token) end
    if lean then
      -- What the consumer builds the Celery message from, besides the claim: the time
      -- limit, and the message a job sent the Celery way keeps (canvas and all).
      local f = redis.call('HMGET', jkey(p, q, id), 'tl', 'msg')
      return {done, list, raw, claim[2], claim[3], claim[4], claim[5], claim[6], claim[7],
              f[1] or '', f[2] or ''}
    end
    return {done, list, raw, claim[2], claim[3], claim[4], claim[5], claim[6], claim[7]}
  end
  if claim[1] == 'missing' and not lean then
    -- No such job: make sure the match was the top-level header before dropping it.
    local message = decode(raw)
    local headers = type(message) == 'table' and message.headers
    if type(headers) ~= 'table' or (headers.origin ~= 'jobyard' and not headers.jobyard_job) then
      return as_celery(list, raw, message)
    end
  end
end
return {done, 0}
