-- Shared functions: webhooks.state.scripts prepends this file to every script, so each
-- algorithm (slot lease, rate limit, breaker, payload release) is written once and the same
-- code runs in the hot path (claim/settle) and in the standalone scripts tests exercise.

-- A key from a template made by webhooks.keys.K with "{1}" (and "{2}") where ids go.
local function fill(tpl, a, b)
  local i = string.find(tpl, '{1}', 1, true)
  local out = string.sub(tpl, 1, i - 1) .. a .. string.sub(tpl, i + 3)
  if b then
    local j = string.find(out, '{2}', 1, true)
    out = string.sub(out, 1, j - 1) .. b .. string.sub(out, j + 3)
  end
  return out
end

-- Every "{1}" of a template replaced (a task message names its delivery more than once).
local function fill_all(tpl, a)
  local out, start = {}, 1
  while true do
    local i = string.find(tpl, '{1}', start, true)
    if not i then break end
    out[#out + 1] = string.sub(tpl, start, i - 1)
    out[#out + 1] = a
    start = i + 3
  end
  out[#out + 1] = string.sub(tpl, start)
  return table.concat(out)
end

local function fmt(x) return string.format('%.17g', x) end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- Endpoint slots: sorted set holder -> lease expiry. True when `holder` holds a slot already
-- or one is free (nothing is taken). Expired leases (holders killed mid-attempt) are reclaimed
-- only when the set looks full: the common case costs two reads.
local function slot_free(key, now, holder, limit)
  if redis.call('ZSCORE', key, holder) then return true end
  if redis.call('ZCARD', key) < tonumber(limit) then return true end
  if redis.call('ZREMRANGEBYSCORE', key, '-inf', now) == 0 then return false end
  return redis.call('ZCARD', key) < tonumber(limit)
end

local function slot_take(key, holder, expiry, lease_ms)
  redis.call('ZADD', key, expiry, holder)
  if redis.call('PTTL', key) < tonumber(lease_ms) then redis.call('PEXPIRE', key, lease_ms) end
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
  local cutoff = now - tonumber(window)
  local function total(k)
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
  if redis.call('HINCRBY', kreq, second, 1) == 1 then
    redis.call('EXPIRE', kreq, idle_ttl)
    if ok and redis.call('HLEN', kreq) > tonumber(window) + 60 then total(kreq) end
  end
  if ok then return {'closed', 'closed'} end
  redis.call('HINCRBY', kfail, second, 1)
  redis.call('EXPIRE', kfail, idle_ttl)
  local requests = total(kreq)
  local failures = total(kfail)
  if requests >= tonumber(min_req) and failures / requests >= tonumber(ratio) then
    redis.call('HSET', key, 'state', 'open', 'opened_at', fmt(now), 'retry_at', retry_at)
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
