--! uses: check
-- Start a session for a person whose password (and code) was just verified: refused if the account was
-- disabled meanwhile, or if the code's time step was used already (RFC 6238 section 5.2: each code once).
-- KEYS[1] the account (hash)   KEYS[2] the person's sessions (zset)   KEYS[3] the new session (hash)
-- ARGV[1] now, Unix ms   ARGV[2] idle timeout ms   ARGV[3] absolute lifetime ms   ARGV[4] the session's digest
-- ARGV[5] its CSRF token   ARGV[6] the TOTP time step used, 0 when none   ARGV[7] '1' when the session may only
-- enrol a second factor (an admin who must and has not yet)   ARGV[8] the folded name
-- Returns {'ok', name as written, role}; {'refused'} when the account is gone or disabled; {'replay'} when the
-- step is not newer than the last one used. An error reply "CORRUPT <what>" when a key has the wrong type or
-- the last step is not a number. Everything is checked before the first write.
local damage = misfit({KEYS[1], 'hash', 'account', KEYS[2], 'zset', 'account_sessions', KEYS[3], 'hash', 'session'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end
local account = redis.call('HMGET', KEYS[1], 'name', 'role', 'disabled', 'totp_step')
if not account[1] or account[3] == '1' then return {'refused'} end
if not countable(account[4]) then return redis.error_reply('CORRUPT not_integer:totp_step') end
local now, step = tonumber(ARGV[1]), tonumber(ARGV[6])
if step > 0 and step <= tonumber(account[4] or '0') then return {'replay'} end
if step > 0 then redis.call('HSET', KEYS[1], 'totp_step', ARGV[6]) end
local expires = now + tonumber(ARGV[3])
local idle_until = math.min(now + tonumber(ARGV[2]), expires)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], expires, ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], 'folded', ARGV[8], 'name', account[1],
           'role', account[2], 'csrf', ARGV[5], 'expires', expires, 'idle_until', idle_until, 'enrol', ARGV[7])
redis.call('PEXPIRE', KEYS[3], idle_until - now)
return {'ok', account[1], account[2]}
