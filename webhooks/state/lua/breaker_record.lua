-- breaker_record: count one result (webhooks.breaker.CircuitBreaker.record).
-- KEYS: 1 breaker, 2 requests, 3 failures
-- ARGV: 1 now, 2 ok (1/0), 3 second, 4 window s, 5 min requests, 6 failure ratio, 7 retry at,
--       8 idle ttl s.   Returns {old state, new state}.
return breaker_record(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), ARGV[2] == '1', ARGV[3], ARGV[4], ARGV[5],
                      ARGV[6], ARGV[7], ARGV[8])
