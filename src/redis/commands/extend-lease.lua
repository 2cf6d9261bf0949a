--[[
  Renews a lease, only while the holder still has it.
    KEYS[1] the lease   ARGV[1] holder id   ARGV[2] lease in milliseconds
  Returns 1 when renewed, 0 when the lease is gone or someone else's.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
