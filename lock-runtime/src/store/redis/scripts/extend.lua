-- Compare-and-pexpire.
--
-- KEYS[1]  the lock key
-- ARGV[1]  the owner token (the value starts with it; the holder's record follows)
-- ARGV[2]  the new TTL in milliseconds
--
-- Returns 1 when the key held ARGV[1] and its TTL was reset, 0 when it did not.
-- (A key held by readers or permits is not a string: not ours.)
local value = redis.pcall('GET', KEYS[1])
-- Only a key of another kind (WRONGTYPE) is an answer; any other error (a command the
-- user may not send) is the caller's to see, not a busy or lost lock.
if type(value) == 'table' and value.err and not string.find(value.err, 'WRONGTYPE', 1, true) then
    return redis.error_reply(value.err)
end
if type(value) == 'string' and string.find(value, ARGV[1], 1, true) == 1 then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
