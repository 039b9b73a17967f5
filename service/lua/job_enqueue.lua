--! uses: check
-- Create jobs of a durable job queue (`service.jobs`), once: a second call with the same job ids (a consumer
-- that crashed between this script and acknowledging its outbox entry) finds them and changes nothing. A job
-- whose owner is no longer in the owners hash (a webhook deleted meanwhile) is not created.
--
-- KEYS[1] owners hash   KEYS[2] due zset   KEYS[3] recent zset   KEYS[4..] one job hash per job
-- ARGV[1] now ms   ARGV[2] jobs the recent zset keeps
-- ARGV[3 + 4(i-1) ..] for job i: job id, owner id, type, body
-- Returns the number of jobs created; an error reply "CORRUPT wrong_type:<key>" when a key has the wrong type
-- (checked first: nothing is written then; a job key that exists is never written anyway).
local damage = misfit({KEYS[1], 'hash', 'owners', KEYS[2], 'zset', 'due', KEYS[3], 'zset', 'recent'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end
local now, keep, created = ARGV[1], tonumber(ARGV[2]), 0
for i = 4, #KEYS do
  local a = 3 + (i - 4) * 4
  local id, owner = ARGV[a], ARGV[a + 1]
  if redis.call('HEXISTS', KEYS[1], owner) == 1 and redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'owner', owner, 'type', ARGV[a + 2], 'body', ARGV[a + 3],
      'state', 'pending', 'attempts', '0', 'created', now, 'updated', now, 'next', now)
    redis.call('ZADD', KEYS[2], now, id)
    redis.call('ZADD', KEYS[3], now, id)
    created = created + 1
  end
end
if created > 0 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -keep - 1) end
return created
