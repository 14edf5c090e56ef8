-- move_due: parked deliveries whose time has come go back onto the retries queue. Each id is
-- moved only by the caller whose ZREM removed it, so racing movers never lose or double one.
-- KEYS: 1 parked set, 2 retries queue, 3 in-flight set
-- ARGV: 1 now, 2 progress deadline, then (delivery id, message)*
-- Returns how many this call moved.
local moved = 0
for i = 3, #ARGV, 2 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    redis.call('ZADD', KEYS[3], ARGV[2], ARGV[i])
    redis.call('HSET', key_delivery(ARGV[i]), 'status', 'retrying', 'updated', ARGV[1])
    moved = moved + 1
  end
end
return moved
