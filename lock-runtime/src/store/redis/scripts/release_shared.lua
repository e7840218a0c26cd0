-- Releases one shared holder (see `acquire_shared.lua`), then wakes the waiters of other
-- processes.
--
-- KEYS[1]  the lock key (also the name of its notification channel)
-- KEYS[2]  the semaphore's permit count
-- ARGV[1]  the owner token
-- ARGV[2]  (optional) 'SPUBLISH' in a cluster, else 'PUBLISH'
--
-- Returns 1 when ARGV[1] held the key and its lease was running, 0 when not (a lapsed
-- holder is removed all the same).
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
        local running = 1
        if #holders == 2 then
            -- The only holder. The set expires with the longest lease, here its own, so the
            -- set still being there says the lease runs, without asking the clock (a call
            -- and two numbers read: a tenth of the script's cost).
            redis.call('DEL', KEYS[1], KEYS[2])
        else
            local time = redis.call('TIME')
            local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
            redis.call('ZREM', KEYS[1], holders[i])
            if i == #holders - 1 then
                -- It had the longest lease: the set now lives as long as the next one's.
                local keep = math.max(tonumber(holders[i - 1]) - now, 1)
                redis.call('PEXPIRE', KEYS[1], keep)
                redis.call('PEXPIRE', KEYS[2], keep)
            end
            if tonumber(holders[i + 1]) <= now then
                running = 0
            end
        end
        redis.call(ARGV[2] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', KEYS[1], '')
        return running
    end
end
return 0
