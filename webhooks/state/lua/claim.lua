-- claim: the one Redis call before an attempt. Loads the delivery, its subscription and its
-- payload, and decides whether the attempt may go now: rate limit, endpoint slot, breaker.
-- Every answer but "go" is already recorded when it returns.
-- KEYS: 1 delivery record, 2 in-flight set, 3 parked set, and when the worker claims as it
--       takes the message: 4 kombu's unacked index, 5 kombu's unacked messages
-- ARGV: 1 now, 2 delivery id, 3 endpoint concurrency, 4 slot lease s, 5 slot lease ms,
--       6 the lease's end (now + lease), 7 the progress deadline of an attempt that goes now
--       or of a wait for a slot (now + lease + progress deadline), 8 progress deadline s,
--       9 longest countdown s (a longer wait is parked), 10 a breaker probe's lease end
--       (now + probe timeout), 11 breaker probe wait s, 12 idle ttl s, 13 rate booking grace s,
--       14 the message's delivery tag or '', 15 its unacked entry (kombu's [message, exchange,
--       routing key] JSON), 16 its unacked score: kombu's own bookkeeping of a message it
--       took (QoS.append), written here so taking and claiming are one round trip
--       (workers.transport)
-- Times the usual path writes come ready-made from the caller (formatting a float in Lua is
-- the dearest thing a script does here); the keys it learns from the record are built by the
-- prelude's key_* functions.
-- Returns {"go", subscription json, payload, retries, attempts, created, account, subscription id,
--         event id, key layout, event type}
--       | {"wait", delay, reason} | {"park", delay, reason} | {"discard", reason} | {"skip", reason}
local did = ARGV[2]
if ARGV[14] and ARGV[14] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[16], ARGV[14])
  redis.call('HSET', KEYS[5], ARGV[14], ARGV[15])
end
local f = redis.call('HMGET', KEYS[1], 'status', 'account', 'sub', 'evt', 'v', 'retries', 'attempts', 'created',
                     'type')
local st = f[1]
if not st then return {'skip', 'unknown delivery'} end
if st == 'delivered' or st == 'dead' or st == 'discarded' then return {'skip', 'already ' .. st} end

local account, sub_id, evt = f[2], f[3], f[4]
local ev, refs
if f[5] then
  ev, refs = key_event(account, evt), key_event_refs(account, evt)
else
  ev, refs = key_legacy_event(evt), key_legacy_event_refs(evt)
end

local function discard(reason)
  redis.call('HSET', KEYS[1], 'status', 'discarded', 'reason', reason, 'updated', ARGV[1])
  redis.call('ZREM', KEYS[2], did)
  release_payload(ev, refs)
  return {'discard', reason}
end

local function wait(delay, reason)
  local now, progress = tonumber(ARGV[1]), tonumber(ARGV[8])
  if delay > tonumber(ARGV[9]) then
    redis.call('HSET', KEYS[1], 'status', 'parked', 'reason', reason, 'due', fmt(now + delay), 'updated', ARGV[1])
    redis.call('ZADD', KEYS[3], fmt(now + delay), did)
    redis.call('ZADD', KEYS[2], 'XX', fmt(now + delay + progress), did)
    return {'park', fmt(delay), reason}
  end
  redis.call('HSET', KEYS[1], 'status', 'waiting', 'reason', reason, 'updated', ARGV[1])
  redis.call('ZADD', KEYS[2], 'XX', fmt(now + delay + progress), did)
  return {'wait', fmt(delay), reason}
end

local sub_raw = redis.call('HGET', key_subs(account), sub_id)
if not sub_raw then return discard('subscription deleted') end
-- Read without decoding (webhooks.subscriptions.Subscription.to_json writes compact JSON in
-- field order: the first "enabled" key is the subscription's own, "rate_limit_per_s" is the
-- last field). Plain finds: a pattern search walks the whole document.
local at = string.find(sub_raw, '"enabled":', 1, true)
if at and string.sub(sub_raw, at + 10, at + 14) == 'false' then
  local why = cjson.decode(sub_raw).disabled_reason
  if type(why) ~= 'string' or why == '' then why = 'by operator' end
  return discard('subscription disabled: ' .. why)
end
local body = redis.call('GET', ev)
if not body then return discard('event payload expired') end

at = string.find(sub_raw, '"rate_limit_per_s":', -64, true)
local rate = at and tonumber(string.sub(sub_raw, at + 19, -2))
if rate and rate > 0 then
  local w = tonumber(rate_reserve(key_rate(sub_id), key_rate_held(sub_id), tonumber(ARGV[1]), 1.0 / rate, 1, did,
                                  tonumber(ARGV[13])))
  if w > 0 then return wait(w, 'rate limited') end
end

local slots = key_slots(sub_id)
local free, held = slot_free(slots, ARGV[1], did, ARGV[3])
if not free then
  -- Every slot is taken: wait to be woken by the next release (oldest first), or at the
  -- lease's end at the latest (a holder killed mid-attempt wakes nobody).
  local waiters = key_slot_waiters(sub_id)
  redis.call('HSET', KEYS[1], 'status', 'waiting', 'reason', 'endpoint busy', 'due', ARGV[6], 'updated', ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[6], did)
  redis.call('ZADD', waiters, ARGV[1], did)
  redis.call('EXPIRE', waiters, tostring(math.ceil(tonumber(ARGV[4])) + 60))
  redis.call('ZADD', KEYS[2], 'XX', ARGV[7], did)
  return {'park', ARGV[4], 'endpoint busy'}
end
-- Asked last: a half-open breaker hands its one probe to a delivery that can go now.
local allowed = breaker_allow(key_breaker(sub_id), ARGV[1], ARGV[10], ARGV[11], ARGV[12])
if allowed[1] == 0 then return wait(math.max(tonumber(allowed[2]), 1.0), 'circuit open') end
slot_take(slots, did, ARGV[6], ARGV[5], held)
redis.call('HSET', KEYS[1], 'status', 'attempting', 'updated', ARGV[1])
redis.call('ZADD', KEYS[2], 'XX', ARGV[7], did)
return {'go', sub_raw, body, f[6] or '0', f[7] or '0', f[8] or '', account, sub_id, evt, f[5] or '', f[9] or ''}
