-- purge: a dead letter is deleted for good; its delivery is discarded and its hold on the
-- event payload released.
-- KEYS: 1 delivery record, 2 dead, 3 dead index, 4 event payload, 5 event refs
-- ARGV: 1 delivery id, 2 now.  Returns 1 when this call purged it.
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'status', 'discarded', 'reason', 'dead letter purged', 'updated', ARGV[2])
end
release_payload(KEYS[4], KEYS[5])
return 1
