-- Compare-and-delete several locks of one holder at once, waking the waiters of each.
--
-- KEYS     the lock keys (each also the name of its notification channel)
-- ARGV[1]  the owner token (each value starts with it; the holder's record follows)
-- ARGV[2]  how to publish: 'SPUBLISH' in a cluster (every key in one slot), else 'PUBLISH'
--
-- Returns, in KEYS' order, 1 for a key that held ARGV[1] and was deleted, 0 for one that
-- did not (expired, or another owner's: left unchanged).
local publish = ARGV[2] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
local released = {}
for i, key in ipairs(KEYS) do
    local value = redis.pcall('GET', key)
    if type(value) == 'string' and string.find(value, ARGV[1], 1, true) == 1 then
        redis.call('DEL', key)
        redis.call(publish, key, '')
        released[i] = 1
    elseif type(value) == 'table' and not string.find(value.err, 'WRONGTYPE', 1, true) then
        -- A refused command, not a key of another kind: the caller's to see.
        return redis.error_reply(value.err)
    else
        released[i] = 0
    end
end
return released
