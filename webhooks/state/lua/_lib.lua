-- Shared functions: webhooks.state.scripts prepends this file to every script, so each
-- algorithm (slot lease, rate limit, breaker, payload release) is written once and the same
-- code runs in the hot path (claim/settle) and in the standalone scripts tests exercise.
-- Keys a script derives from ids it reads come from the generated key_* functions before it.

local function fmt(x) return string.format('%.17g', x) end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- Endpoint slots: sorted set holder -> lease expiry. Returns whether `holder` may take a
-- slot (it holds one already, or one is free) and how many leases the set held (0: the key
-- does not exist). Expired leases (holders killed mid-attempt) are reclaimed only when the set
-- looks full: the common case costs one read.
local function slot_free(key, now, holder, limit)
  limit = tonumber(limit)
  local held = redis.call('ZCARD', key)
  if held < limit then return true, held end
  if redis.call('ZSCORE', key, holder) then return true, held end
  if redis.call('ZREMRANGEBYSCORE', key, '-inf', now) == 0 then return false, held end
  held = redis.call('ZCARD', key)
  return held < limit, held
end

-- Take (or renew) `holder`'s lease. The key lives as long as its longest lease: a new key gets
-- this lease's expiry, an existing one (it always has an expiry) is only ever extended (GT).
local function slot_take(key, holder, expiry, lease_ms, held)
  redis.call('ZADD', key, expiry, holder)
  if held == 0 then
    redis.call('PEXPIRE', key, lease_ms)
  else
    redis.call('PEXPIRE', key, lease_ms, 'GT')
  end
end

-- GCRA rate limit with bookings (see webhooks.limits.RateLimiter.reserve). Returns the wait
-- in seconds as a string; '0' means go now (and counts).
local function rate_reserve(key, held, now, interval, burst, holder, grace)
  local tau = (burst - 1) * interval
  if holder ~= '' then
    redis.call('ZREMRANGEBYSCORE', held, '-inf', fmt(now - grace))
    local booked = redis.call('ZSCORE', held, holder)
    if booked then
      booked = tonumber(booked)
      if booked <= now then
        redis.call('ZREM', held, holder)
        return '0'
      end
      return fmt(booked - now)
    end
  end
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local go_at = math.max(tat - tau, now)
  if go_at > now and holder == '' then return fmt(go_at - now) end
  local new_tat = tat + interval
  redis.call('SET', key, fmt(new_tat), 'PX', string.format('%d', math.ceil((new_tat - now) * 1000) + 1000))
  if go_at > now then
    redis.call('ZADD', held, fmt(go_at), holder)
    redis.call('PEXPIRE', held, string.format('%d', math.ceil((go_at - now + grace) * 1000)))
    return fmt(go_at - now)
  end
  return '0'
end

-- Circuit breaker admission (see webhooks.breaker). Returns {allowed 0/1, wait seconds string}.
local function breaker_allow(key, now, probe_until, probe_wait, idle_ttl)
  local st = redis.call('HGET', key, 'state')
  if not st or st == 'closed' then return {1, '0'} end
  now = tonumber(now)
  if st == 'open' then
    local retry_at = tonumber(redis.call('HGET', key, 'retry_at'))
    if now < retry_at then return {0, fmt(retry_at - now)} end
    redis.call('HSET', key, 'state', 'half_open', 'probe_until', probe_until)
    redis.call('EXPIRE', key, idle_ttl)
    return {1, '0'}
  end
  local pu = tonumber(redis.call('HGET', key, 'probe_until'))
  if now >= pu then
    redis.call('HSET', key, 'probe_until', probe_until)
    return {1, '0'}
  end
  return {0, fmt(math.min(pu - now, tonumber(probe_wait)))}
end

-- Circuit breaker result (see webhooks.breaker). Returns {old state, new state}. A success
-- while closed can never open the breaker, so it only counts (no window sum).
local function breaker_record(key, kreq, kfail, now, ok, second, window, min_req, ratio, retry_at, idle_ttl)
  local st = redis.call('HGET', key, 'state') or 'closed'
  if st == 'open' then return {'open', 'open'} end
  if st == 'half_open' then
    if ok then
      redis.call('DEL', key, kreq, kfail)
      return {'half_open', 'closed'}
    end
    redis.call('HSET', key, 'state', 'open', 'retry_at', retry_at)
    redis.call('HDEL', key, 'probe_until')
    redis.call('EXPIRE', key, idle_ttl)
    return {'half_open', 'open'}
  end
  local function total(k)
    local cutoff = tonumber(now) - tonumber(window)
    local sum = 0
    local h = redis.call('HGETALL', k)
    for i = 1, #h, 2 do
      if tonumber(h[i]) + 1 <= cutoff then redis.call('HDEL', k, h[i])
      else sum = sum + tonumber(h[i + 1]) end
    end
    return sum
  end
  -- once per second bucket (its first count), not per attempt: renew the expiry, and forget
  -- old buckets when they pile up (one field per second of traffic)
  if redis.call('HINCRBY', kreq, second, '1') == 1 then
    redis.call('EXPIRE', kreq, idle_ttl)
    if ok and redis.call('HLEN', kreq) > tonumber(window) + 60 then total(kreq) end
  end
  if ok then return {'closed', 'closed'} end
  redis.call('HINCRBY', kfail, second, '1')
  redis.call('EXPIRE', kfail, idle_ttl)
  local requests = total(kreq)
  local failures = total(kfail)
  if requests >= tonumber(min_req) and failures / requests >= tonumber(ratio) then
    redis.call('HSET', key, 'state', 'open', 'opened_at', fmt(tonumber(now)), 'retry_at', retry_at)
    redis.call('EXPIRE', key, idle_ttl)
    redis.call('DEL', kreq, kfail)
    return {'closed', 'open'}
  end
  return {'closed', 'closed'}
end

-- One delivery of an event has ended for good: drop the payload after the last one.
local function release_payload(ev, refs)
  if redis.call('DECR', refs) <= 0 then redis.call('DEL', ev, refs) end
end
