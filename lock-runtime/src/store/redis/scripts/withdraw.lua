-- A waiting writer gives up (or is cancelled): removes its mark against new readers (set
-- by `acquire.lua`) if the mark is still its own, and wakes the lock's waiters, readers the
-- mark kept out among them.
--
-- KEYS[1]  the lock key (also the name of its notification channel)
-- KEYS[2]  the writer's mark, `<KEYS[1]>:writer`
-- ARGV[1]  the writer's token
-- ARGV[2]  (optional) 'SPUBLISH' in a cluster, else 'PUBLISH'
--
-- Returns 1 when the mark was ours and is gone; 0 when it was not (another writer's, or
-- expired): then nothing is changed.
if redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
    redis.call(ARGV[2] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', KEYS[1], '')
    return 1
end
return 0
