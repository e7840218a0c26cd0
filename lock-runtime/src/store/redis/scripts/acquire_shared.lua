-- A shared acquire: one of any number of readers, or one of a semaphore's permits. The
-- holders live in a sorted set at the lock key, each member the holder's token and
-- record, scored by when its lease ends (the server's clock, in milliseconds); the set
-- expires with the last lease, so a plain lock's `SET NX` finds the key taken while any
-- holder's lease runs.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the semaphore's permit count, kept while it has holders (expiring with the set,
--          so a reader never finds one left over)
-- KEYS[3]  set while a writer waits: new readers stay out (see `acquire.lua`)
-- KEYS[4]  (optional) the lock's fencing counter
-- ARGV[1]  the owner token
-- ARGV[2]  the TTL in milliseconds
-- ARGV[3]  the permit count; 0 for a reader
-- ARGV[4]  '1' to reclaim: the lock is also ours if ARGV[1] already holds it (its lease then
--          restarts from now)
-- ARGV[5]  how long the fencing counter lives after its last use, in milliseconds
-- ARGV[6]  the holder's record
-- ARGV[7]  (with KEYS[4]) the highest token or server clock, in microseconds, the client
--          has seen: the token is drawn above it (see `acquire.lua`)
--
-- Returns { 1, fencing token or 0 } when taken; { 0, milliseconds until a holder's lease
-- ends } when busy; { 2, the count the holders use (0: readers) } when the key is held
-- with another permit count or as the other kind.
-- Cost: every `redis.call` and every number turned into text or back is a few thousand
-- server instructions (a script's own start is more than a plain `SET`), so the common
-- case, a free key, makes five calls and passes the TTL and permit count on as the text
-- they came as.
--
-- Fails on a plain lock's string: a writer holds the key.
local count = redis.pcall('ZCARD', KEYS[1])
if type(count) == 'table' then
    -- WRONGTYPE: a plain lock's string. Any other error (a command the user may not send)
    -- is the caller's to see, not a busy lock.
    if not string.find(count.err, 'WRONGTYPE', 1, true) then
        return redis.error_reply(count.err)
    end
    return { 0, math.max(redis.call('PTTL', KEYS[1]), 0) }
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- Drops lapsed holders (a free key has none).
if count > 0 then
    count = count - redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
local reader = ARGV[3] == '0'
local ttl = tonumber(ARGV[2])
local ends = string.format('%d', now + ttl)
-- Keeps the set (and the permit count) alive as long as its longest lease.
local function outlive()
    if redis.call('PTTL', KEYS[1]) < ttl then
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        if not reader then
            redis.call('PEXPIRE', KEYS[2], ARGV[2])
        end
    end
end
-- A reclaim finds our own earlier request's membership (its reply was lost) and restarts
-- its lease from now, as a fresh grant would: the caller counts the lease from this
-- request, so the server must not drop the holder earlier. Asked before the writer's
-- mark, which keeps out new readers only.
if ARGV[4] == '1' and count > 0 then
    for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
        if string.find(member, ARGV[1], 1, true) == 1 then
            redis.call('ZADD', KEYS[1], ends, member)
            outlive()
            return { 1, tonumber(string.match(member, ';fence=(%d+)') or '0') }
        end
    end
end
if reader then
    local writer = redis.call('PTTL', KEYS[3])
    if writer > 0 then
        return { 0, writer }
    end
end
if count > 0 then
    -- The count the holders use, as the text it was stored as (none: readers).
    local held = redis.call('GET', KEYS[2]) or '0'
    if held ~= ARGV[3] then
        return { 2, tonumber(held) }
    end
    if not reader and count >= tonumber(ARGV[3]) then
        local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
        return { 0, math.max(tonumber(first[2]) - now, 0) }
    end
end
local member = ARGV[1] .. ARGV[6]
local fence = 0
if KEYS[4] then
    local clock = tonumber(time[1]) * 1000000 + tonumber(time[2])
    local last = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
    fence = math.max(last + 1, clock, tonumber(ARGV[7] or '0') + 1)
    local text = string.format('%.0f', fence)
    redis.call('SET', KEYS[4], text, 'PX', ARGV[5])
    member = member .. ';fence=' .. text
end
redis.call('ZADD', KEYS[1], ends, member)
if count == 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    if not reader then
        redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
    end
else
    outlive()
end
return { 1, fence }
