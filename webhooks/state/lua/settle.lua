-- settle: the one Redis call after an attempt. Logs the attempt, counts it for the endpoint's
-- health and breaker, applies the status transition the caller decided, releases the payload
-- when the delivery ended, gives the endpoint slot back and wakes one waiter.
-- KEYS: 1 delivery record, 2 in-flight set, 3 parked set, 4 attempt log, 5 retries queue,
--       6 event payload, 7 event refs, 8 endpoint slots, 9 slot waiters, 10 breaker,
--       11 breaker requests, 12 breaker failures, 13 stats minute bucket, 14 stats hour bucket,
--       15 latencies, 16 last ok, 17 last error, 18 failing since, 19 dead letters, 20 dead index,
--       21 kombu's unacked index, 22 kombu's unacked messages (see ARGV 32)
-- ARGV: 1 now, 2 delivery id, 3 action (delivered | retry | park | dead), 4 a retry's or
--       park's due time (now + delay; '' otherwise), 5 attempt json, 6 ok (1/0), 7 counts for
--       the endpoint (1/0), 8 duration ms, 9 error kind, 10 status code, 11 error message,
--       12 reason, 13 attempts kept, 14 attempt retention s, 15 the due time's progress
--       deadline (due + progress deadline; '' otherwise), 16 breaker window s, 17 breaker min
--       requests, 18 breaker failure ratio, 19 when an opening breaker may be probed
--       (now + cooldown), 20 idle ttl s, 21 disable after s, 22 dead-letter retention s,
--       23 latencies kept, 24 the current second, 25 account, 26 subscription id, 27 event id,
--       28 event type, 29 created, 30 key layout ('' for legacy), 31 this attempt's number (the
--       record's attempts count after it: written with the transition, one command fewer than
--       HINCRBY; two workers attempting one delivery at once may count one attempt short),
--       32 the delivery tag of the broker message this attempt runs from, or '': its entry in
--       kombu's unacked bookkeeping goes here, so the worker's ack needs no round trip of its
--       own (workers.transport); the message is settled, nothing is left to restore,
--       33 a woken delivery's progress deadline (now + progress deadline)
-- Times come ready-made from the caller (formatting a float in Lua is dearer than the command
-- that writes it), and so do numbers given to redis.call: strings, which Redis takes as they are.
-- Returns {result, breaker before, breaker after, disable (1/0), woken delivery id or "",
--          broker message acked here (1/0)}
--   result: "delivered" | "duplicate" | "retry" | "park" | "dead" | "dead_again" | "gone"
local did = ARGV[2]
local action = ARGV[3]
local ok = ARGV[6] == '1'
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'gone', 'closed', 'closed', 0, ''} end

-- the attempt log
if redis.call('LPUSH', KEYS[4], ARGV[5]) > tonumber(ARGV[13]) then
  redis.call('LTRIM', KEYS[4], '0', tostring(tonumber(ARGV[13]) - 1))
end
redis.call('EXPIRE', KEYS[4], ARGV[14])

-- the endpoint's health figures (an expiry is set when a bucket or list is new; the latency
-- list is trimmed and its expiry renewed every hundred pushes: same bounds, fewer commands)
local field = ok and 'ok' or 'fail'
if redis.call('HINCRBY', KEYS[13], field, '1') == 1 then redis.call('EXPIRE', KEYS[13], '3900') end
if redis.call('HINCRBY', KEYS[14], field, '1') == 1 then redis.call('EXPIRE', KEYS[14], '90000') end
local kept = tonumber(ARGV[23])
local n = redis.call('LPUSH', KEYS[15], ARGV[8])
if n == 1 or n > kept + 100 then
  redis.call('LTRIM', KEYS[15], '0', tostring(kept - 1))
  redis.call('EXPIRE', KEYS[15], '90000')
end
if ok then
  redis.call('SET', KEYS[16], ARGV[1], 'EX', '2592000')
else
  redis.call('SET', KEYS[17], cjson.encode({at = tonumber(ARGV[1]), error = ARGV[9]}), 'EX', '2592000')
end

-- breaker and continuous failure (only for results the endpoint is answerable for)
local old_state, new_state, disable = 'closed', 'closed', 0
if ARGV[7] == '1' then
  local t = breaker_record(KEYS[10], KEYS[11], KEYS[12], ARGV[1], ok, ARGV[24], ARGV[16], ARGV[17], ARGV[18],
                           ARGV[19], ARGV[20])
  old_state, new_state = t[1], t[2]
  if ok then
    redis.call('DEL', KEYS[18])
  else
    redis.call('SET', KEYS[18], ARGV[1], 'NX', 'EX', tostring(math.ceil(tonumber(ARGV[21])) + 86400))
    local since = tonumber(redis.call('GET', KEYS[18]))
    if since and tonumber(ARGV[1]) - since >= tonumber(ARGV[21]) then
      redis.call('DEL', KEYS[18])
      disable = 1
    end
  end
end

-- the status transition
local result = action
local attempts = ARGV[31]
if action == 'delivered' then
  redis.call('ZREM', KEYS[2], did)
  if status == 'delivered' then
    redis.call('HINCRBY', KEYS[1], 'duplicates', '1')
    redis.call('HINCRBY', KEYS[1], 'attempts', '1')
    result = 'duplicate'
  else
    redis.call('HSET', KEYS[1], 'status', 'delivered', 'last_status', ARGV[10], 'last_error', '', 'reason', '',
               'updated', ARGV[1], 'delivered_at', ARGV[1], 'attempts', attempts)
    release_payload(KEYS[6], KEYS[7])
  end
elseif action == 'retry' or action == 'park' then
  redis.call('HINCRBY', KEYS[1], 'retries', '1')
  redis.call('HSET', KEYS[1], 'status', action == 'retry' and 'retrying' or 'parked', 'due', ARGV[4],
             'last_status', ARGV[10], 'last_error', ARGV[11], 'reason', ARGV[12], 'updated', ARGV[1],
             'attempts', attempts)
  if action == 'park' then redis.call('ZADD', KEYS[3], ARGV[4], did) end
  redis.call('ZADD', KEYS[2], 'XX', ARGV[15], did)
else
  -- dead: the dead letter is written here, once, from what the attempt knows (the payload
  -- stays for replay)
  redis.call('ZREM', KEYS[2], did)
  local v = ARGV[30]
  if v == '' then v = nil end
  local entry = cjson.encode({
    delivery_id = did, account = ARGV[25], subscription_id = ARGV[26], event_id = ARGV[27], type = ARGV[28],
    reason = ARGV[12], error = ARGV[11] ~= '' and ARGV[11] or cjson.null, status = tonumber(ARGV[10]) or cjson.null,
    attempts = tonumber(attempts), created = tonumber(ARGV[29]), died_at = tonumber(ARGV[1]), v = v})
  if redis.call('HSETNX', KEYS[19], did, entry) == 1 then
    redis.call('ZADD', KEYS[20], ARGV[1], did)
    redis.call('EXPIRE', KEYS[19], ARGV[22])
    redis.call('EXPIRE', KEYS[20], ARGV[22])
  else
    result = 'dead_again'
  end
  redis.call('HSET', KEYS[1], 'status', 'dead', 'reason', ARGV[12], 'last_status', ARGV[10],
             'last_error', ARGV[11], 'updated', ARGV[1], 'attempts', attempts)
end

-- the broker message is done with (the worker's ack finds nothing left to do)
-- (acked = 1 only when it was there: a broker elsewhere, or a message already restored, is
-- acked by the worker as usual)
local acked = 0
if ARGV[32] ~= '' then
  acked = redis.call('HDEL', KEYS[22], ARGV[32])
  redis.call('ZREM', KEYS[21], ARGV[32])
end

-- the slot goes back; the oldest delivery waiting for one is put on the retries queue
redis.call('ZREM', KEYS[8], did)
local woken = ''
for _, w in ipairs(redis.call('ZRANGE', KEYS[9], '0', '3')) do
  redis.call('ZREM', KEYS[9], w)
  if redis.call('ZREM', KEYS[3], w) == 1 then
    redis.call('LPUSH', KEYS[5], wake_message(w, did))
    redis.call('ZADD', KEYS[2], ARGV[33], w)
    redis.call('HSET', key_delivery(w), 'status', 'retrying', 'updated', ARGV[1])
    woken = w
    break
  end
end
return {result, old_state, new_state, disable, woken, acked}
