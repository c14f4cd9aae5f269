-- Remove jobs. An active job is refused (its worker holds it). A flow's parent takes its
-- pending children with it, and theirs (flows.lua, remove_pending_children); its active
-- children are left to finish. A pending child releases its parent (child_removed).
-- ARGV: prefix, queue, maxlen, id...
-- Returns {codes, removed, running}: per id 1, 0 (not found) or -1 (active); the
-- `queue/id` of every child removed with them; of every child left running.
local p, q, maxlen = ARGV[1], ARGV[2], ARGV[3]
local out, removed, running = {}, {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local k = jkey(p, q, id)
  local f = redis.call('HMGET', k, 'state', 'group')
  local state = f[1]
  if not state then
    out[#out + 1] = 0
  elseif state == 'active' then
    out[#out + 1] = -1
  else
    local set = STATE_SET[state]
    redis.call('ZREM', skey(p, q, set), id)
    redis.call('LREM', skey(p, q, 'parked'), 0, id)
    -- Its message, if any, stays in the group's list: dropped when taken, as a missing job.
    if f[2] then redis.call('SREM', qkey(p, q, 'gwait', f[2]), id) end
    child_removed(p, q, id, maxlen)
    remove_pending_children(p, q, id, maxlen, removed, running)
    drop_job(p, q, id)
    emit(p, q, maxlen, 'removed', id)
    out[#out + 1] = 1
  end
end
return {out, removed, running}
