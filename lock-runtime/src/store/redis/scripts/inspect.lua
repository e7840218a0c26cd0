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
-- is and gives { { member, milliseconds left, ... } of its live holders, permit count
-- (0: readers), counter or false }: a list where the value would be. A key of any other
-- type is no lock: { false, -2, false }.
-- Asked with `GET` first (no `TYPE`: a user with the documented commands may read locks).
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'table' then
    -- WRONGTYPE: a shared key. Any other error (a command the user may not send) is the
    -- caller's to see.
    if not string.find(value.err, 'WRONGTYPE', 1, true) then
        return redis.error_reply(value.err)
    end
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local live = redis.pcall('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
    if live.err then
        if string.find(live.err, 'WRONGTYPE', 1, true) then
            return { false, -2, false }
        end
        return redis.error_reply(live.err)
    end
    for i = 2, #live, 2 do
        live[i] = tonumber(live[i]) - now
    end
    return { live, tonumber(redis.call('GET', KEYS[3]) or '0'), redis.call('GET', KEYS[2]) }
end
local left = redis.call('PTTL', KEYS[1])
if value and ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call(ARGV[1] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', KEYS[1], '')
end
return { value, left, redis.call('GET', KEYS[2]) }
