-- Create jobs unless their id exists (idempotency), then make each waiting or delayed.
-- ARGV: prefix, queue, maxlen, count, publish (0: the message exists already: a job sent
-- the Celery way, adopted by the worker that received it), then per job 9 values:
--   id, name, data, opts, priority step, timelimit json, delay ms, attempts, lifo (0|1)
-- Returns per job the state it was created in, 1 waiting, 2 paused (a waiting job of a
-- paused queue), 3 delayed, or 0 when an existing job with that id kept its place.
local p, q, maxlen, n, send = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1' 
local now = now_ms()
local waiting_as = 1
if redis.call('EXISTS', skey(p, q, 'paused')) == 1 then waiting_as = 2 end
local created = {}
for i = 0, n - 1 do
  local b = 6 + i * 9
  local id = ARGV[b]
  local k = jkey(p, q, id)
  if redis.call('EXISTS', k) == 1 then
    created[#created + 1] = 0
  else
    redis.call('HSET', k, 'name', ARGV[b + 1], 'data', ARGV[b + 2], 'opts', ARGV[b + 3],
               'priority', ARGV[b + 4], 'tl', ARGV[b + 5], 'attempts', ARGV[b + 7],
               'attemptsMade', 0, 'createdAt', now)
    if ARGV[b + 8] == '1' then redis.call('HSET', k, 'lifo', 1) end
    local delay = tonumber(ARGV[b + 6])
    local as = waiting_as
    if delay > 0 then
      as = 3
      make_delayed(p, q, id, now + delay, maxlen, 'delayed')
    elseif send then
      make_waiting(p, q, id, now, maxlen)
    else
      redis.call('HSET', k, 'state', 'waiting', 'waitingSince', now)
      redis.call('ZADD', skey(p, q, 'wait'), now, id)
      emit(p, q, maxlen, 'waiting', id)
    end
    created[#created + 1] = as
  end
end
return created
