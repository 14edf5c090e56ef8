-- dead_letter: the fallback writer of a dead letter, for a task that failed outside the
-- attempt (a killed pool child, an unexpected error); settle writes the usual ones. Builds
-- the entry from the record in the same call. Idempotent (HSETNX by delivery id).
-- KEYS: 1 delivery record, 2 in-flight set
-- ARGV: 1 delivery id, 2 now, 3 retention s, 4 reason (if the record has none), 5 error
-- Returns 1 when this call wrote it, 0 when it was there already or the record is gone.
redis.call('ZREM', KEYS[2], ARGV[1])
local rec = hgetall(KEYS[1])
if not rec.account then return 0 end
local reason = rec.reason
if not reason or reason == '' then reason = ARGV[4] end
local err = rec.last_error
if not err or err == '' then err = ARGV[5] end
local entry = cjson.encode({
  delivery_id = ARGV[1], account = rec.account, subscription_id = rec.sub, event_id = rec.evt, type = rec.type,
  reason = reason, error = (err ~= '' and err) or cjson.null, status = tonumber(rec.last_status or '') or cjson.null,
  attempts = tonumber(rec.attempts or '0'), created = tonumber(rec.created), died_at = tonumber(ARGV[2]), v = rec.v})
local dead, idx = key_dead(rec.account), key_dead_index(rec.account)
if redis.call('HSETNX', dead, ARGV[1], entry) == 0 then return 0 end
redis.call('ZADD', idx, ARGV[2], ARGV[1])
redis.call('EXPIRE', dead, ARGV[3])
redis.call('EXPIRE', idx, ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'dead', 'updated', ARGV[2], 'reason', reason)
return 1
