-- publish: store an event once and enqueue one delivery per matching subscription, atomically,
-- provided the caller matched against the account's current subscriptions.
-- KEYS: 1 seen marker, 2 event, 3 event refs, 4 account's delivery index, 5 queue, 6 in-flight set,
--       7 account's subscriptions, 8 their version
-- ARGV: 1 body, 2 ttl s, 3 n, 4 account, 5 event id, 6 type, 7 now, 8 oldest kept, 9 progress
--       deadline, 10 this publish's token, 11 the subscriptions version the caller matched
--       against ('' when it has none), 12 the deliveries: 'delivery-id subscription-id ...'
--       (ids never hold spaces; one argument rather than two per delivery, which the client packs)
-- Each task message is the prelude's publish_message(delivery id).
-- Returns {n} (0 writes nothing); {-1, token of the publish that came first} when this account
-- already published this event id; {-2, current version, HGETALL of the subscriptions} when
-- ARGV[11] is not the current version (nothing written: match again and call again).
-- A hash written before versions existed gets one now (this publish's token); no hash at all
-- is version '0', so an account without subscriptions costs no key.
local version = redis.call('GET', KEYS[8])
if not version then
  if redis.call('EXISTS', KEYS[7]) == 1 then
    version = ARGV[10]
    redis.call('SET', KEYS[8], version)
  else
    version = '0'
  end
end
if version ~= ARGV[11] then return {-2, version, redis.call('HGETALL', KEYS[7])} end
if ARGV[3] == '0' then return {0} end
local first = redis.call('GET', KEYS[1])
if first then return {-1, first} end
redis.call('SET', KEYS[1], ARGV[10], 'EX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[8])
local indexed, inflight, messages = {}, {}, {}
local list, at = ARGV[12], 1
while at <= #list do
  -- 'id sub id sub ...': plain finds (a pattern match walks every character in Lua)
  local gap = string.find(list, ' ', at, true)
  local did = string.sub(list, at, gap - 1)
  local stop = string.find(list, ' ', gap + 1, true) or (#list + 1)
  local sub = string.sub(list, gap + 1, stop - 1)
  at = stop + 1
  local dk = key_delivery(did)
  -- v = 2: the payload lives under the account-scoped event key. Fields that start at zero
  -- or equal another (retries, attempts, updated) are left out: readers default them.
  redis.call('HSET', dk, 'account', ARGV[4], 'sub', sub, 'evt', ARGV[5], 'type', ARGV[6], 'v', '2',
             'status', 'pending', 'created', ARGV[7])
  redis.call('EXPIRE', dk, ARGV[2])
  indexed[#indexed + 1] = ARGV[7]
  indexed[#indexed + 1] = did
  inflight[#inflight + 1] = ARGV[9]
  inflight[#inflight + 1] = did
  messages[#messages + 1] = publish_message(did)
end
-- one variadic call each (in the order of the deliveries, as one call per delivery would)
redis.call('ZADD', KEYS[4], unpack(indexed))
redis.call('ZADD', KEYS[6], unpack(inflight))
redis.call('LPUSH', KEYS[5], unpack(messages))
return {tonumber(ARGV[3])}
