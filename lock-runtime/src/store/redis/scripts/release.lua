-- Compare-and-delete; then, if some waiter marked the lock, wake the waiters of other
-- processes.
--
-- KEYS[1]  the lock key (also the name of its notification channel)
-- KEYS[2]  the lock's waiter marker, set by a waiting acquire that found the lock busy
-- ARGV[1]  the owner token
--
-- Returns 1 when the key held ARGV[1] and was deleted, 0 when it did not (expired, or
-- another owner's): then nothing is changed. Publishes on KEYS[1] only when the marker
-- was there, so a release nobody waits for costs no PUBLISH.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    if redis.call('DEL', KEYS[2]) == 1 then
        redis.call('PUBLISH', KEYS[1], '')
    end
    return 1
end
return 0
