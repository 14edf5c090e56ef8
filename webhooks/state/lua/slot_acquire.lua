-- slot_acquire: take one of an endpoint's concurrency slots (webhooks.limits.EndpointSlots).
-- KEYS: 1 slots;  ARGV: 1 now, 2 holder, 3 limit, 4 lease expiry, 5 lease ms.  Returns 1 or 0.
local free, held = slot_free(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if not free then return 0 end
slot_take(KEYS[1], ARGV[2], ARGV[4], ARGV[5], held)
return 1
