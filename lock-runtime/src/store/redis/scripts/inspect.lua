-- What an operator sees of a lock, and, when asked, an operator's release of it whoever
-- holds it (waking the waiters of other processes).
--
-- KEYS[1]  the lock key (also the name of its notification channel)
-- KEYS[2]  the lock's fencing counter, in the same hash slot (read, never changed)
-- KEYS[3]  the permit count of a semaphore at the key, in the same hash slot
-- ARGV[1]  (to release) 'SPUBLISH' in a cluster, else 'PUBLISH'
--
-- Returns { value or false, remaining lease in milliseconds, counter or false }, as the
-- lock was before any release; the value is the holder's token and record. A key held by
-- readers or a semaphore's permits (a sorted set, see `acquire_shared.lua`) is left as it
-- is and gives { live holders, permit count (0: readers) }: a number where the value
-- would be.
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'table' then
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local holders = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
    return { holders, tonumber(redis.call('GET', KEYS[3]) or '0') }
end
local left = redis.call('PTTL', KEYS[1])
if value and ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call(ARGV[1] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', KEYS[1], '')
end
return { value, left, redis.call('GET', KEYS[2]) }
