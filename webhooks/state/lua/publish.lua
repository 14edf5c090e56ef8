-- publish: store an event once and enqueue one delivery per matching subscription, atomically.
-- KEYS: 1 seen marker, 2 event, 3 event refs, 4 account's delivery index, 5 queue, 6 in-flight set
-- ARGV: 1 body, 2 ttl s, 3 n, 4 account, 5 event id, 6 type, 7 now, 8 oldest kept, 9 progress
--       deadline, 10 delivery record template, 11 this publish's token,
--       then (delivery id, subscription id, message)*
-- Returns {n}, or {-1, token of the publish that came first} when this account already
-- published this event id.
local first = redis.call('GET', KEYS[1])
if first then return {-1, first} end
redis.call('SET', KEYS[1], ARGV[11], 'EX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[8])
for i = 12, #ARGV, 3 do
  local dk = fill(ARGV[10], ARGV[i])
  -- v = 2: the payload lives under the account-scoped event key
  redis.call('HSET', dk, 'account', ARGV[4], 'sub', ARGV[i + 1], 'evt', ARGV[5], 'type', ARGV[6], 'v', '2',
             'status', 'pending', 'created', ARGV[7], 'updated', ARGV[7], 'retries', 0, 'attempts', 0)
  redis.call('EXPIRE', dk, ARGV[2])
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[i])
  redis.call('ZADD', KEYS[6], ARGV[9], ARGV[i])
  redis.call('LPUSH', KEYS[5], ARGV[i + 2])
end
return {tonumber(ARGV[3])}
