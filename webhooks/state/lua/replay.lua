-- replay: a dead letter goes back on the retries queue as a fresh pending delivery with the
-- same id (so the same webhook-id); it leaves the dead-letter store in the same call.
-- KEYS: 1 delivery record, 2 dead, 3 dead index, 4 account's delivery index, 5 queue,
--       6 in-flight set, 7 event payload
-- ARGV: 1 delivery id, 2 account, 3 subscription id, 4 event id, 5 type, 6 created, 7 now,
--       8 record ttl s, 9 progress deadline, 10 message, 11 layout version ('' for legacy)
-- Returns 1 when replayed, 0 when the dead letter is gone, -1 when the payload expired.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[7]) == 0 then return -1 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'account', ARGV[2], 'sub', ARGV[3], 'evt', ARGV[4], 'type', ARGV[5],
           'status', 'pending', 'created', ARGV[6], 'updated', ARGV[7], 'retries', 0, 'attempts', 0, 'replays', 1)
if ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'v', ARGV[11]) end
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[9], ARGV[1])
redis.call('LPUSH', KEYS[5], ARGV[10])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
