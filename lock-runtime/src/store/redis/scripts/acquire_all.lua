-- Takes several plain locks at once for one owner: all of them if every key is free,
-- else none.
--
-- KEYS[1..n]     the lock keys
-- KEYS[n+1..2n]  (optional) their fencing counters, in the same order
-- ARGV[1]  the owner token
-- ARGV[2]  the TTL in milliseconds
-- ARGV[3]  n
-- ARGV[4]  how long a fencing counter lives after its last use, in milliseconds
-- ARGV[5]  the holder's record
-- ARGV[6]  (with the counters) the highest token or server clock, in microseconds, the
--          client has seen: every token is drawn above it (see `acquire.lua`)
--
-- Returns { 0, the busy key's remaining lease in milliseconds } when a key is taken
-- (by a lock, readers or permits); else { 1, fence or 0 for each key }.
local n = tonumber(ARGV[3])
for i = 1, n do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        return { 0, math.max(redis.call('PTTL', KEYS[i]), 0) }
    end
end
local value = ARGV[1] .. ARGV[5]
local taken = { 1 }
local time
for i = 1, n do
    local fence = 0
    local this = value
    if KEYS[n + i] then
        time = time or redis.call('TIME')
        local clock = tonumber(time[1]) * 1000000 + tonumber(time[2])
        local last = tonumber(redis.call('GET', KEYS[n + i]) or '0') or 0
        fence = math.max(last + 1, clock, tonumber(ARGV[6] or '0') + 1)
        local text = string.format('%.0f', fence)
        redis.call('SET', KEYS[n + i], text, 'PX', ARGV[4])
        this = value .. ';fence=' .. text
    end
    redis.call('SET', KEYS[i], this, 'PX', ARGV[2])
    taken[i + 1] = fence
end
return taken
