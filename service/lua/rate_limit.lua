-- Count one hit in a fixed window that starts at the first hit.
-- KEYS[1] counter   ARGV[1] window ms
-- Returns {count, milliseconds until the window ends}
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
