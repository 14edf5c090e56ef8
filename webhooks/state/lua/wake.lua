-- wake: the oldest delivery waiting for one of an endpoint's slots goes onto the retries queue
-- now (settle does the same after each attempt; this is for callers outside an attempt).
-- KEYS: 1 parked set, 2 retries queue, 3 slot waiters, 4 in-flight set
-- ARGV: 1 now, 2 progress deadline, then (delivery id, message)*
-- oldest first. Returns the woken id, or false.
for i = 3, #ARGV, 2 do
  redis.call('ZREM', KEYS[3], ARGV[i])
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    redis.call('ZADD', KEYS[4], ARGV[2], ARGV[i])
    redis.call('HSET', key_delivery(ARGV[i]), 'status', 'retrying', 'updated', ARGV[1])
    return ARGV[i]
  end
end
return false
