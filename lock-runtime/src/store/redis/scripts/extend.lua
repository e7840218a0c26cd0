-- Compare-and-pexpire.
--
-- KEYS[1]  the lock key
-- ARGV[1]  the owner token (the value starts with it; the holder's record follows)
-- ARGV[2]  the new TTL in milliseconds
--
-- Returns 1 when the key held ARGV[1] and its TTL was reset, 0 when it did not.
-- (A key held by readers or permits is not a string: not ours.)
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'string' and string.find(value, ARGV[1], 1, true) == 1 then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
-- A refused command (not WRONGTYPE, which says the key is of another kind) is the
-- caller's to see, not a lost lock.
if type(value) == 'table' and not string.find(value.err, 'WRONGTYPE', 1, true) then
    return redis.error_reply(value.err)
end
return 0
