--! uses: check
-- Count one hit in a fixed window that starts at the first hit.
-- KEYS[1] counter   ARGV[1] window ms
-- Returns {count, milliseconds until the window ends}; an error reply "CORRUPT <what>" when the counter is not
-- a number (checked first: nothing is written then).
local _, damage = read_counter(KEYS[1], 'rate_limit')
if damage then return redis.error_reply('CORRUPT ' .. damage) end
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
