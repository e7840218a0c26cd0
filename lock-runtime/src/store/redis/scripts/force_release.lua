-- An operator's release of a lock, whoever holds it; wakes the waiters of other processes.
--
-- KEYS[1]  the lock key (also the name of its notification channel)
-- KEYS[2]  the lock's fencing counter, in the same hash slot (read, never changed)
-- ARGV[1]  'SPUBLISH' in a cluster, else 'PUBLISH'
--
-- Returns what the lock held before, as `inspect.lua` does.
local value = redis.call('GET', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if value then
    redis.call('DEL', KEYS[1])
    redis.call(ARGV[1] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', KEYS[1], '')
end
return { value, left, redis.call('GET', KEYS[2]) }
