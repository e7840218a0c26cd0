-- An operator's release of a lock, whoever holds it; wakes the waiters of other processes.
--
-- KEYS[1]  the lock key (also the name of its notification channel)
-- KEYS[2]  the lock's fencing counter, in the same hash slot (read, never changed)
-- KEYS[3]  the permit count of a semaphore at the key, in the same hash slot
-- ARGV[1]  'SPUBLISH' in a cluster, else 'PUBLISH'
--
-- Returns what the lock held before, as `inspect.lua` does; readers' and permits' keys
-- are left as they are (their holders are counted as `inspect.lua` counts them).
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'table' then
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local holders = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
    return { holders, tonumber(redis.call('GET', KEYS[3]) or '0') }
end
local left = redis.call('PTTL', KEYS[1])
if value then
    redis.call('DEL', KEYS[1])
    redis.call(ARGV[1] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', KEYS[1], '')
end
return { value, left, redis.call('GET', KEYS[2]) }
