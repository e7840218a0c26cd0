-- What an operator sees of a lock (nothing is changed).
--
-- KEYS[1]  the lock key
-- KEYS[2]  the lock's fencing counter, in the same hash slot
--
-- Returns { value or false, remaining lease in milliseconds, counter or false }; the
-- value is the holder's token and record.
local value = redis.call('GET', KEYS[1])
return { value, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]) }
