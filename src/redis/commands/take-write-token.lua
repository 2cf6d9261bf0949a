--[[
  A token bucket shared by every worker. Redis's clock is the only clock, so workers with skewed clocks agree.
    KEYS[1] the bucket (hash: tokens, at)
    ARGV[1] tokens per minute   ARGV[2] burst (the bucket's size)
  Returns 0 when a token was taken, otherwise how many milliseconds until one will be there.
]]
local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ratePerMs = tonumber(ARGV[1]) / 60000
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or nowMs
tokens = math.min(burst, tokens + (nowMs - at) * ratePerMs)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / ratePerMs)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(nowMs))
redis.call('PEXPIRE', KEYS[1], 120000)
return wait
