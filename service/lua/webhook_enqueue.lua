--! uses: check
-- Create the deliveries of one outbox event, once: a second dispatch of the same entry (after a crash between
-- this script and XACK) finds them and changes nothing. A webhook deleted meanwhile gets none.
--
-- KEYS[1] webhooks hash   KEYS[2] due zset   KEYS[3] recent zset   KEYS[4..] one delivery hash per delivery
-- ARGV[1] now ms   ARGV[2] deliveries the recent zset keeps
-- ARGV[3 + 4(i-1) ..] for delivery i: delivery id, webhook id, event type, JSON body
-- Returns the number of deliveries created; an error reply "CORRUPT wrong_type:<key>" when a key has the wrong
-- type (checked first: nothing is written then; a delivery key that exists is never written anyway).
local damage = misfit({KEYS[1], 'hash', 'webhooks', KEYS[2], 'zset', 'due', KEYS[3], 'zset', 'recent'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end
local now, keep, created = ARGV[1], tonumber(ARGV[2]), 0
for i = 4, #KEYS do
  local a = 3 + (i - 4) * 4
  local id, hook = ARGV[a], ARGV[a + 1]
  if redis.call('HEXISTS', KEYS[1], hook) == 1 and redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'webhook', hook, 'type', ARGV[a + 2], 'body', ARGV[a + 3],
      'state', 'pending', 'attempts', '0', 'created', now, 'updated', now, 'next', now)
    redis.call('ZADD', KEYS[2], now, id)
    redis.call('ZADD', KEYS[3], now, id)
    created = created + 1
  end
end
if created > 0 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -keep - 1) end
return created
