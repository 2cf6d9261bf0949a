--[[
  Claims a webhook delivery and, only when the claim is new, writes the records that go with it.
    KEYS[1] the delivery   KEYS[2..] records
    ARGV[1] pending ttl in seconds, then a value and a ttl in seconds per record
  Returns 'new', 'duplicate' (the delivery's job is queued) or 'in-flight' (claimed, not yet queued).
]]
if redis.call('SET', KEYS[1], 'pending', 'EX', ARGV[1], 'NX') then
  for i = 2, #KEYS do
    redis.call('SET', KEYS[i], ARGV[i * 2 - 2], 'EX', ARGV[i * 2 - 1])
  end
  return 'new'
end
if redis.call('GET', KEYS[1]) == 'done' then return 'duplicate' end
return 'in-flight'
