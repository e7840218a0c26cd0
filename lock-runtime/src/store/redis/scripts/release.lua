-- Compare-and-delete, then wake the waiters of other processes.
--
-- KEYS[1]  the lock key (also the name of its notification channel)
-- ARGV[1]  the owner token (the value starts with it; the holder's record follows)
-- ARGV[2]  (optional) how to publish: 'SPUBLISH' in a cluster (the notification reaches
--          only the shard that holds the lock), else 'PUBLISH'
--
-- Returns 1 when the key held ARGV[1] and was deleted, 0 when it did not (expired, or
-- another owner's): then nothing is changed.
-- (A key held by readers or permits is not a string: not ours.)
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'string' and string.find(value, ARGV[1], 1, true) == 1 then
    redis.call('DEL', KEYS[1])
    redis.call(ARGV[2] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', KEYS[1], '')
    return 1
end
-- A refused command (not WRONGTYPE, which says the key is of another kind) is the
-- caller's to see, not a lost lock.
if type(value) == 'table' and not string.find(value.err, 'WRONGTYPE', 1, true) then
    return redis.error_reply(value.err)
end
return 0
