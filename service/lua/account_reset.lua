--! uses: check
-- Use a password reset: in one step the new password's hash is set, the reset used up, and every session of the
-- person ended, so a reset works once however many requests race with it, and no session made with the old
-- password outlives it. A TOTP second factor stays as it is: a reset never removes it.
-- KEYS[1] the reset (hash)   KEYS[2] the account (hash)   KEYS[3] the person's sessions (zset)
-- KEYS[4..] each session (hash) the caller read from KEYS[3], in the order of ARGV[5..]
-- ARGV[1] the token's SHA-256   ARGV[2] the folded name   ARGV[3] the new password's argon2id hash
-- ARGV[4] now, Unix ms   ARGV[5..] the session digests the caller read (one per KEYS[4..])
-- The account keeps the used token's SHA-256 as `pw_reset`: a sign-in that read the account, checked the old
-- password and started its session after this step sees it changed and ends that session
-- (`accounts.Accounts.sign_in`).
-- Returns {'ok', name as written, role}; {'invalid'} when the reset is gone, expired, replaced by a newer one, or
-- the account is gone or disabled; {'retry'} when the person's sessions changed since the caller read them (it
-- reads them again). An error reply "CORRUPT <what>" when a key has the wrong type. Everything is checked before
-- the first write.
local checks = {KEYS[1], 'hash', 'password_reset', KEYS[2], 'hash', 'account', KEYS[3], 'zset', 'account_sessions'}
for i = 4, #KEYS do
  table.insert(checks, KEYS[i]); table.insert(checks, 'hash'); table.insert(checks, 'session')
end
local damage = misfit(checks)
if damage then return redis.error_reply('CORRUPT ' .. damage) end
local reset = redis.call('HMGET', KEYS[1], 'folded', 'expires')
if reset[1] ~= ARGV[2] or not tonumber(reset[2]) or tonumber(reset[2]) <= tonumber(ARGV[4]) then
  return {'invalid'}
end
local account = redis.call('HMGET', KEYS[2], 'name', 'role', 'disabled', 'reset')
if not account[1] or account[3] == '1' or account[4] ~= ARGV[1] then return {'invalid'} end
if redis.call('ZCARD', KEYS[3]) ~= #KEYS - 3 then return {'retry'} end
for i = 5, #ARGV do
  if not redis.call('ZSCORE', KEYS[3], ARGV[i]) then return {'retry'} end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'password', ARGV[3], 'pw_reset', ARGV[1])
redis.call('HDEL', KEYS[2], 'reset')
for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('DEL', KEYS[3])
return {'ok', account[1], account[2]}
