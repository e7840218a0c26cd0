-- The scripted acquire, for what `SET NX PX` alone cannot do.
--
-- KEYS[1]  the lock key
-- KEYS[2]  (optional) the lock's fencing counter, in the same hash slot
-- ARGV[1]  the owner token
-- ARGV[2]  the TTL in milliseconds
-- ARGV[3]  '1' to reclaim: the lock is also ours if it already holds ARGV[1] (an earlier
--          request of ours, whose outcome was unknown, took it)
-- ARGV[4]  how long the fencing counter lives after its last use, in milliseconds
-- ARGV[5]  (optional) the holder's record, stored right after the token (see `holder.rs`); with a
--          fencing token, `;fence=<token>` follows it
-- ARGV[6]  '1' when the caller waits for the lock: if readers or permits hold the key (a
--          sorted set, see `acquire_shared.lua`), it keeps new readers out for ARGV[7]
--          milliseconds by setting `<KEYS[1]>:writer` to its token (writer preference;
--          the key shares the lock's hash slot), and deletes it once it holds the lock (or
--          gives up: `withdraw.lua`)
-- ARGV[8]  (with KEYS[2]) the highest token or server clock, in microseconds, the client
--          has seen: the token is drawn above it
--
-- Returns, when another owner holds the lock, -1 - (its remaining lease in milliseconds,
-- so a waiter can try again right when it ends):
-- -1 for "busy, ending now", -1001 for "busy for another second". Otherwise takes the lock
-- and returns 0 without KEYS[2], or the fencing token: the greater of the counter plus
-- one, the server's clock in microseconds and the client's floor plus one, which is
-- stored back. The clock keeps tokens increasing when the counter is missing (expired,
-- never used) or stale (the server restored an older snapshot, or a replica that lagged
-- behind was promoted); the client's floor, when that server's clock is behind too.
local record = ARGV[5] or ''
local waiting = ARGV[6] == '1'
local holder = redis.pcall('GET', KEYS[1])
if type(holder) == 'table' and holder.err then
    -- WRONGTYPE: the key is of another kind. Any other error (a command the user may not
    -- send) is the caller's to see, not a busy lock.
    if not string.find(holder.err, 'WRONGTYPE', 1, true) then
        return redis.error_reply(holder.err)
    end
    -- Shared holders: busy for as long as the last of their leases, told apart by 2^40
    -- (`SHARED_BUSY`) added to it.
    if waiting then
        redis.call('SET', KEYS[1] .. ':writer', ARGV[1], 'PX', ARGV[7])
    end
    return -1 - math.max(redis.call('PTTL', KEYS[1]), 0) - 1099511627776
end
if waiting and not holder then
    redis.call('DEL', KEYS[1] .. ':writer')
end
if holder and (ARGV[3] ~= '1' or string.find(holder, ARGV[1], 1, true) ~= 1) then
    local left = redis.call('PTTL', KEYS[1])
    if left < 0 then
        left = 0
    end
    return -1 - left
end
if not KEYS[2] then
    redis.call('SET', KEYS[1], ARGV[1] .. record, 'PX', ARGV[2])
    return 0
end
local now = redis.call('TIME')
local clock = tonumber(now[1]) * 1000000 + tonumber(now[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local fence = math.max(last + 1, clock, tonumber(ARGV[8] or '0') + 1)
local text = string.format('%.0f', fence)
redis.call('SET', KEYS[2], text, 'PX', ARGV[4])
redis.call('SET', KEYS[1], ARGV[1] .. record .. ';fence=' .. text, 'PX', ARGV[2])
return fence
