--! uses: check
-- Use a session: refused once its idle timeout or absolute lifetime has passed (then deleted); otherwise its
-- idle timeout starts again (sliding), never beyond the absolute lifetime. The clock is the caller's, so that
-- both limits are checked against one time (and tests can move it); the key's TTL only cleans up.
-- KEYS[1] the session (hash)   ARGV[1] now, Unix ms   ARGV[2] idle timeout ms
-- Returns {folded name, name as written, role, CSRF token, expires ms, enrol flag}, or false when there is no
-- such session or it has ended. An error reply "CORRUPT <what>" when the key has the wrong type or its expiries
-- are not numbers. Everything is checked before the first write.
local damage = misfit({KEYS[1], 'hash', 'session'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end
local s = redis.call('HMGET', KEYS[1], 'folded', 'name', 'role', 'csrf', 'expires', 'idle_until', 'enrol')
if not s[1] then return false end
local now, expires, idle_until = tonumber(ARGV[1]), tonumber(s[5]), tonumber(s[6])
if not expires or not idle_until then return redis.error_reply('CORRUPT not_integer:session') end
if now >= expires or now >= idle_until then
  redis.call('DEL', KEYS[1])
  return false
end
idle_until = math.min(now + tonumber(ARGV[2]), expires)
redis.call('HSET', KEYS[1], 'idle_until', idle_until)
redis.call('PEXPIRE', KEYS[1], idle_until - now)
return {s[1], s[2], s[3], s[4], s[5], s[7] or '0'}
