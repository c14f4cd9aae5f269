-- Keep a running job's lock alive. ARGV: prefix, lock ms, then (queue, id, token) triples.
-- Returns the ids whose lock was no longer ours.
local p, lock_ms = ARGV[1], ARGV[2]
local lost = {}
for i = 3, #ARGV, 3 do
  local lock = qkey(p, ARGV[i], 'lock', ARGV[i + 1])
  if redis.call('GET', lock) == ARGV[i + 2] then
    redis.call('PEXPIRE', lock, lock_ms)
  else
    lost[#lost + 1] = ARGV[i + 1]
  end
end
return lost
