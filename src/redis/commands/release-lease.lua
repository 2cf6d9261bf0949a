--[[
  Gives a lease back, only if the holder still has it (an expired lease taken over stays the new holder's).
    KEYS[1] the lease   ARGV[1] holder id
  Returns 1 when released, 0 otherwise.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
