-- A message sent the Celery way (delay(), apply_async(), send_task, canvas, beat, Flower)
-- through Jobyard's transport: the job is created with the message, in one step, so every
-- Celery task is a registry job from the moment it is sent. The message is kept with the
-- job (field `msg`): publish() sends it again as it is whenever the job is due once more (a
-- retry, a stall, a resume, a delay that came due).
-- ARGV: prefix, queue, maxlen, id, name, data, opts, priority step, timelimit json,
--       delay ms, attempts, lifo (0|1), message
-- Returns what enqueue.lua returns per job (1 waiting, 2 paused, 3 delayed, 0 the id
-- existed and kept its place), or 4: the job is running and its attempt sent its own next
-- run (Celery's self.retry(), self.replace()); the message is kept, with when it is due, and
-- the attempt's end sends it (fail.lua's retry "as resent", hand_back.lua).
local p, q, maxlen, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local k = jkey(p, q, id)
local state = redis.call('HGET', k, 'state')
local now = now_ms()
if state == 'active' then
  redis.call('HSET', k, 'msg', ARGV[13], 'resent', 1, 'resentDue', now + tonumber(ARGV[10]))
  return 4
end
if state then return 0 end
redis.call('HSET', k, 'name', ARGV[5], 'data', ARGV[6], 'opts', ARGV[7], 'priority', ARGV[8],
           'tl', ARGV[9], 'attempts', ARGV[11], 'attemptsMade', 0, 'createdAt', now,
           'msg', ARGV[13])
if ARGV[12] == '1' then redis.call('HSET', k, 'lifo', 1) end
local delay = tonumber(ARGV[10])
if delay > 0 then
  make_delayed(p, q, id, now + delay, maxlen, 'delayed')
  return 3
end
make_waiting(p, q, id, now, maxlen)
if redis.call('EXISTS', skey(p, q, 'paused')) == 1 then return 2 end
return 1
