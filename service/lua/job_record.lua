--! uses: check
-- Record the outcome of one attempt at a job (`service.jobs`), unless another attempt has superseded it.
--
-- KEYS[1] job hash   KEYS[2] due zset   KEYS[3] recent zset
-- ARGV[1] job id   ARGV[2] attempt   ARGV[3] state: delivered | retrying | failed
-- ARGV[4] next attempt ms   ARGV[5] status (e.g. HTTP) or ""   ARGV[6] error or ""   ARGV[7] now ms
-- ARGV[8] done TTL s   ARGV[9] recent keep
-- Returns 1 if recorded, 0 if the attempt is no longer current (dropped, or leased again after its lease
-- expired). An error reply "CORRUPT wrong_type:<key>" when a key has the wrong type (checked first: nothing is
-- written then).
local damage = misfit({KEYS[1], 'hash', 'job', KEYS[2], 'zset', 'due', KEYS[3], 'zset', 'recent'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'delivered' or state == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'updated', ARGV[7], 'status', ARGV[5], 'error', ARGV[6])
if ARGV[3] == 'retrying' then
  redis.call('HSET', KEYS[1], 'next', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  if ARGV[3] == 'delivered' then redis.call('HSET', KEYS[1], 'delivered', ARGV[7]) end
  redis.call('HDEL', KEYS[1], 'next')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[8])
end
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -tonumber(ARGV[9]) - 1)
return 1
