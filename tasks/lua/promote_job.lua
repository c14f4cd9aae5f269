-- Run a delayed job now: waiting (and so sent to the broker) whatever its due time
-- (BullMQ's Job.promote). The due-time loop is promote.lua.
-- ARGV: prefix, queue, maxlen, id
-- Returns 1 promoted, 0 no such job, or the job's state when it is not delayed.
local p, q, maxlen, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local state = redis.call('HGET', jkey(p, q, id), 'state')
if not state then return 0 end
if state ~= 'delayed' then return state end
redis.call('ZREM', skey(p, q, 'delayed'), id)
make_waiting(p, q, id, now_ms(), maxlen)
return 1
