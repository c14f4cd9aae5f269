-- ARGV: prefix, queue, maxlen, 'pause' | 'resume'. Resume sends the parked jobs, in order.
local p, q, maxlen = ARGV[1], ARGV[2], ARGV[3]
if ARGV[4] == 'pause' then
  redis.call('SET', skey(p, q, 'paused'), 1)
  emit(p, q, maxlen, 'paused', '')
  return 0
end
redis.call('DEL', skey(p, q, 'paused'))
local parked = redis.call('LRANGE', skey(p, q, 'parked'), 0, -1)
redis.call('DEL', skey(p, q, 'parked'))
local sent = 0
for _, id in ipairs(parked) do
  if redis.call('HGET', jkey(p, q, id), 'state') == 'waiting' then
    publish(p, q, id)
    sent = sent + 1
  end
end
emit(p, q, maxlen, 'resumed', '')
return sent
