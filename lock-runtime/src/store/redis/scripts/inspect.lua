-- What an operator sees of a lock (nothing is changed).
--
-- KEYS[1]  the lock key
-- KEYS[2]  the lock's fencing counter, in the same hash slot
-- KEYS[3]  the permit count of a semaphore at the key, in the same hash slot
--
-- Returns { value or false, remaining lease in milliseconds, counter or false }; the
-- value is the holder's token and record. A key held by readers or a semaphore's permits
-- (a sorted set, see `acquire_shared.lua`) gives { live holders, permit count (0:
-- readers) } instead: a number where the value would be.
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'table' then
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local holders = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
    return { holders, tonumber(redis.call('GET', KEYS[3]) or '0') }
end
return { value, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]) }
