-- Extends one shared holder's lease (see `acquire_shared.lua`).
--
-- KEYS[1]  the lock key
-- KEYS[2]  the semaphore's permit count
-- ARGV[1]  the owner token
-- ARGV[2]  the new TTL in milliseconds
--
-- Returns 1 when ARGV[1] held the key with a running lease, now reset; 0 when not.
local holders = redis.pcall('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
if holders.err then
    -- WRONGTYPE: a plain lock's string, not a shared holder's. Any other error (a command
    -- the user may not send) is the caller's to see, not a lost lease.
    if not string.find(holders.err, 'WRONGTYPE', 1, true) then
        return redis.error_reply(holders.err)
    end
    return 0
end
for i = 1, #holders, 2 do
    if string.find(holders[i], ARGV[1], 1, true) == 1 then
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        if tonumber(holders[i + 1]) <= now then
            return 0
        end
        local ttl = tonumber(ARGV[2])
        redis.call('ZADD', KEYS[1], 'XX', string.format('%d', now + ttl), holders[i])
        if redis.call('PTTL', KEYS[1]) < ttl then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            redis.call('PEXPIRE', KEYS[2], ARGV[2])
        end
        return 1
    end
end
return 0
