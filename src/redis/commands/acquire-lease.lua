--[[
  Takes a cluster's lease if nobody holds it, and hands out the next fencing token.
    KEYS[1] the lease (holder id, PX)   KEYS[2] the counter fencing tokens come from
    ARGV[1] holder id                   ARGV[2] lease in milliseconds
  Returns the new fencing token (>= 1), or 0 while another holder has the lease.
]]
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return redis.call('INCR', KEYS[2])
end
return 0
