-- settle: the one Redis call after an attempt. Logs the attempt, counts it for the endpoint's
-- health and breaker, applies the status transition the caller decided, releases the payload
-- when the delivery ended, gives the endpoint slot back and wakes one waiter.
-- KEYS: 1 delivery record, 2 in-flight set, 3 parked set, 4 attempt log, 5 retries queue
-- ARGV: 1 now, 2 delivery id, 3 action (delivered | retry | park | dead), 4 delay s,
--       5 attempt json, 6 ok (1/0), 7 counts for the endpoint (1/0), 8 duration ms,
--       9 error kind, 10 status code, 11 error message, 12 reason,
--       13 attempts kept, 14 attempt retention s, 15 progress deadline s,
--       16 breaker window s, 17 breaker min requests, 18 breaker failure ratio,
--       19 breaker cooldown s, 20 idle ttl s, 21 disable after s, 22 dead-letter retention s,
--       23 latencies kept, 24 wake message (the delivery id as {1}),
--       25.. key templates: subscription's own event, event refs, legacy event, legacy refs,
--       slots, slot waiters, breaker, breaker requests, breaker failures, stats, dead, dead index,
--       delivery record
-- Returns {result, breaker before, breaker after, disable (1/0), woken delivery id or ""}
--   result: "delivered" | "duplicate" | "retry" | "park" | "dead" | "dead_again"
local now = tonumber(ARGV[1])
local did = ARGV[2]
local action = ARGV[3]
local ok = ARGV[6] == '1'
local progress = tonumber(ARGV[15])
local f = redis.call('HMGET', KEYS[1], 'account', 'sub', 'evt', 'v', 'type', 'created', 'status', 'reason')
local account, sub_id, evt, v, etype, created, status = f[1], f[2], f[3], f[4], f[5], f[6], f[7]
if not account then return {'gone', 'closed', 'closed', 0, ''} end

-- the attempt log
redis.call('LPUSH', KEYS[4], ARGV[5])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[13]) - 1)
redis.call('EXPIRE', KEYS[4], ARGV[14])

-- the endpoint's health figures
local mk = fill(ARGV[34], sub_id, 'm' .. math.floor(now / 60))
local hk = fill(ARGV[34], sub_id, 'h' .. math.floor(now / 3600))
local field = ok and 'ok' or 'fail'
redis.call('HINCRBY', mk, field, 1)
redis.call('EXPIRE', mk, 3900)
redis.call('HINCRBY', hk, field, 1)
redis.call('EXPIRE', hk, 90000)
local lat = fill(ARGV[34], sub_id, 'lat')
redis.call('LPUSH', lat, ARGV[8])
redis.call('LTRIM', lat, 0, tonumber(ARGV[23]) - 1)
redis.call('EXPIRE', lat, 90000)
if ok then
  redis.call('SET', fill(ARGV[34], sub_id, 'last_ok'), ARGV[1], 'EX', 2592000)
else
  redis.call('SET', fill(ARGV[34], sub_id, 'last_error'),
             cjson.encode({at = now, error = ARGV[9]}), 'EX', 2592000)
end

-- breaker and continuous failure (only for results the endpoint is answerable for)
local old_state, new_state, disable = 'closed', 'closed', 0
if ARGV[7] == '1' then
  local t = breaker_record(fill(ARGV[31], sub_id), fill(ARGV[32], sub_id), fill(ARGV[33], sub_id), now, ok,
                           tostring(math.floor(now)), ARGV[16], ARGV[17], ARGV[18],
                           fmt(now + tonumber(ARGV[19])), ARGV[20])
  old_state, new_state = t[1], t[2]
  local fk = fill(ARGV[34], sub_id, 'failing_since')
  if ok then
    redis.call('DEL', fk)
  else
    redis.call('SET', fk, ARGV[1], 'NX', 'EX', math.ceil(tonumber(ARGV[21])) + 86400)
    local since = tonumber(redis.call('GET', fk))
    if since and now - since >= tonumber(ARGV[21]) then
      redis.call('DEL', fk)
      disable = 1
    end
  end
end

-- the status transition
local ev, refs
if v then
  ev, refs = fill(ARGV[25], account, evt), fill(ARGV[26], account, evt)
else
  ev, refs = fill(ARGV[27], evt), fill(ARGV[28], evt)
end
local result = action
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if action == 'delivered' then
  redis.call('ZREM', KEYS[2], did)
  if status == 'delivered' then
    redis.call('HINCRBY', KEYS[1], 'duplicates', 1)
    result = 'duplicate'
  else
    redis.call('HSET', KEYS[1], 'status', 'delivered', 'last_status', ARGV[10], 'last_error', '', 'reason', '',
               'updated', ARGV[1], 'delivered_at', ARGV[1])
    release_payload(ev, refs)
  end
elseif action == 'retry' or action == 'park' then
  local due = now + tonumber(ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'retries', 1)
  redis.call('HSET', KEYS[1], 'status', action == 'retry' and 'retrying' or 'parked', 'due', fmt(due),
             'last_status', ARGV[10], 'last_error', ARGV[11], 'reason', ARGV[12], 'updated', ARGV[1])
  if action == 'park' then redis.call('ZADD', KEYS[3], fmt(due), did) end
  redis.call('ZADD', KEYS[2], 'XX', fmt(due + progress), did)
else
  -- dead: the dead letter is written here, once, from the record (the payload stays for replay)
  redis.call('ZREM', KEYS[2], did)
  local dead, idx = fill(ARGV[35], account), fill(ARGV[36], account)
  local code = tonumber(ARGV[10])
  local entry = cjson.encode({
    delivery_id = did, account = account, subscription_id = sub_id, event_id = evt, type = etype,
    reason = ARGV[12], error = ARGV[11] ~= '' and ARGV[11] or cjson.null, status = code or cjson.null,
    attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts')), created = tonumber(created), died_at = now,
    v = v})
  if redis.call('HSETNX', dead, did, entry) == 1 then
    redis.call('ZADD', idx, ARGV[1], did)
    redis.call('EXPIRE', dead, ARGV[22])
    redis.call('EXPIRE', idx, ARGV[22])
  else
    result = 'dead_again'
  end
  redis.call('HSET', KEYS[1], 'status', 'dead', 'reason', ARGV[12], 'last_status', ARGV[10],
             'last_error', ARGV[11], 'updated', ARGV[1])
end

-- the slot goes back; the oldest delivery waiting for one is put on the retries queue
redis.call('ZREM', fill(ARGV[29], sub_id), did)
local woken = ''
local waiters = fill(ARGV[30], sub_id)
local candidates = redis.call('ZRANGE', waiters, 0, 3)
for _, w in ipairs(candidates) do
  redis.call('ZREM', waiters, w)
  if redis.call('ZREM', KEYS[3], w) == 1 then
    redis.call('LPUSH', KEYS[5], fill_all(ARGV[24], w))
    redis.call('ZADD', KEYS[2], fmt(now + progress), w)
    redis.call('HSET', fill(ARGV[37], w), 'status', 'retrying', 'updated', ARGV[1])
    woken = w
    break
  end
end
return {result, old_state, new_state, disable, woken}
