-- breaker_allow: may an attempt go to the endpoint now (webhooks.breaker.CircuitBreaker.allow)?
-- KEYS: 1 breaker;  ARGV: 1 now, 2 probe lease end, 3 probe wait s, 4 idle ttl s.
-- Returns {allowed 0/1, wait seconds}.
return breaker_allow(KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4])
