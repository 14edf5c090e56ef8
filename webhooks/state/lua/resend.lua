-- resend: the reconciler re-sends a delivery whose message was lost, if it is still overdue.
-- KEYS: 1 in-flight set, 2 queue, 3 delivery record
-- ARGV: 1 delivery id, 2 now, 3 new deadline, 4 message.  Returns 1 when re-sent.
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('HINCRBY', KEYS[3], 'reconciled', 1)
return 1
