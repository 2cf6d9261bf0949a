--[[
  Compare-and-set of one hash field, optionally fenced by a lease: the field is written only if it still
  holds what the caller read, and (with a lease) only while the caller's holder still has that lease.
    KEYS[1] the hash   KEYS[2] (optional) the lease
    ARGV[1] field   ARGV[2] the value read ('' when the field was absent)   ARGV[3] the new value
    ARGV[4] (with a lease) the holder id
  Returns 1 when written, 0 when the field changed since it was read (read again), -1 when the lease is lost.
]]
if KEYS[2] and redis.call('GET', KEYS[2]) ~= ARGV[4] then return -1 end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then current = '' end
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
