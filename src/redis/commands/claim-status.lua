--[[
  Claims the right to write one commit-status value to GitHub, for a short while.
    KEYS[1] the commit's status hash
    ARGV[1] context   ARGV[2] value ("state\ndescription")   ARGV[3] replaceFinal ('0'/'1')
    ARGV[4] claim ms   ARGV[5] claim field   ARGV[6] record ttl in seconds
  Returns 0 when the value must not be written (already recorded, the context is full, a final state
  that may not be replaced, or claimed by another writer), else 1 after claiming it: the claim field
  holds the Redis time it lapses at. The value itself is recorded only once GitHub accepted it, so a
  crash mid-write leaves the record as it was.
]]
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == ARGV[2] or current == 'exhausted' then return 0 end
if ARGV[3] == '0' and current and string.sub(current, 1, 8) ~= 'pending\n' then return 0 end
local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local claimedUntil = tonumber(redis.call('HGET', KEYS[1], ARGV[5]))
if claimedUntil and claimedUntil > nowMs then return 0 end
redis.call('HSET', KEYS[1], ARGV[5], tostring(nowMs + tonumber(ARGV[4])))
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
