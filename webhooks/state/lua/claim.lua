-- claim: the one Redis call before an attempt. Loads the delivery, its subscription and its
-- payload, and decides whether the attempt may go now: rate limit, endpoint slot, breaker.
-- Every answer but "go" is already recorded when it returns.
-- KEYS: 1 delivery record, 2 in-flight set, 3 parked set
-- ARGV: 1 now, 2 delivery id, 3 progress deadline s, 4 endpoint concurrency, 5 slot lease s,
--       6 longest countdown s (a longer wait is parked), 7 breaker probe timeout s,
--       8 breaker probe wait s, 9 idle ttl s, 10 rate booking grace s,
--       11.. key templates: subs, event, event refs, legacy event, legacy refs, slots, rate,
--       rate held, breaker, slot waiters
-- Returns {"go", subscription json, payload, retries, attempts, created, account, subscription id,
--         event id, key layout, event type}
--       | {"wait", delay, reason} | {"park", delay, reason} | {"discard", reason} | {"skip", reason}
local now = tonumber(ARGV[1])
local did = ARGV[2]
local progress = tonumber(ARGV[3])
local f = redis.call('HMGET', KEYS[1], 'status', 'account', 'sub', 'evt', 'v', 'retries', 'attempts', 'created',
                     'type')
local st = f[1]
if not st then return {'skip', 'unknown delivery'} end
if st == 'delivered' or st == 'dead' or st == 'discarded' then return {'skip', 'already ' .. st} end

local account, sub_id, evt = f[2], f[3], f[4]
local ev, refs
if f[5] then
  ev, refs = fill(ARGV[12], account, evt), fill(ARGV[13], account, evt)
else
  ev, refs = fill(ARGV[14], evt), fill(ARGV[15], evt)
end

local function discard(reason)
  redis.call('HSET', KEYS[1], 'status', 'discarded', 'reason', reason, 'updated', ARGV[1])
  redis.call('ZREM', KEYS[2], did)
  release_payload(ev, refs)
  return {'discard', reason}
end

local function wait(delay, reason)
  if delay > tonumber(ARGV[6]) then
    redis.call('HSET', KEYS[1], 'status', 'parked', 'reason', reason, 'due', fmt(now + delay), 'updated', ARGV[1])
    redis.call('ZADD', KEYS[3], fmt(now + delay), did)
    redis.call('ZADD', KEYS[2], 'XX', fmt(now + delay + progress), did)
    return {'park', fmt(delay), reason}
  end
  redis.call('HSET', KEYS[1], 'status', 'waiting', 'reason', reason, 'updated', ARGV[1])
  redis.call('ZADD', KEYS[2], 'XX', fmt(now + delay + progress), did)
  return {'wait', fmt(delay), reason}
end

local sub_raw = redis.call('HGET', fill(ARGV[11], account), sub_id)
if not sub_raw then return discard('subscription deleted') end
-- Read without decoding (webhooks.subscriptions.Subscription.to_json writes compact JSON in
-- field order: "enabled" is the first key of that name, "rate_limit_per_s" the last field).
if string.match(sub_raw, '"enabled":(%a+)') == 'false' then
  local why = cjson.decode(sub_raw).disabled_reason
  if type(why) ~= 'string' or why == '' then why = 'by operator' end
  return discard('subscription disabled: ' .. why)
end
local body = redis.call('GET', ev)
if not body then return discard('event payload expired') end

local rate = tonumber(string.match(sub_raw, '"rate_limit_per_s":([^,}]+)}$'))
if rate and rate > 0 then
  local w = tonumber(rate_reserve(fill(ARGV[17], sub_id), fill(ARGV[18], sub_id), now, 1.0 / rate, 1, did,
                                  tonumber(ARGV[10])))
  if w > 0 then return wait(w, 'rate limited') end
end

local lease = tonumber(ARGV[5])
local slots = fill(ARGV[16], sub_id)
if not slot_free(slots, now, did, ARGV[4]) then
  -- Every slot is taken: wait to be woken by the next release (oldest first), or at the
  -- lease's end at the latest (a holder killed mid-attempt wakes nobody).
  local waiters = fill(ARGV[20], sub_id)
  redis.call('HSET', KEYS[1], 'status', 'waiting', 'reason', 'endpoint busy', 'due', fmt(now + lease), 'updated', ARGV[1])
  redis.call('ZADD', KEYS[3], fmt(now + lease), did)
  redis.call('ZADD', waiters, fmt(now), did)
  redis.call('EXPIRE', waiters, math.ceil(lease) + 60)
  redis.call('ZADD', KEYS[2], 'XX', fmt(now + lease + progress), did)
  return {'park', fmt(lease), 'endpoint busy'}
end
-- Asked last: a half-open breaker hands its one probe to a delivery that can go now.
local allowed = breaker_allow(fill(ARGV[19], sub_id), now, fmt(now + tonumber(ARGV[7])), ARGV[8], ARGV[9])
if allowed[1] == 0 then return wait(math.max(tonumber(allowed[2]), 1.0), 'circuit open') end
slot_take(slots, did, fmt(now + lease), math.ceil(lease * 1000))
redis.call('HSET', KEYS[1], 'status', 'attempting', 'updated', ARGV[1])
redis.call('ZADD', KEYS[2], 'XX', fmt(now + lease + progress), did)
return {'go', sub_raw, body, f[6] or '0', f[7] or '0', f[8] or '', account, sub_id, evt, f[5] or '', f[9] or ''}
