-- rate_reserve: the endpoint's rate limit (webhooks.limits.RateLimiter.reserve).
-- KEYS: 1 rate, 2 rate held;  ARGV: 1 now, 2 interval s, 3 burst, 4 holder ('' for none), 5 grace s.
-- Returns the wait in seconds as a string ('0': go now).
return rate_reserve(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4],
                    tonumber(ARGV[5]))
