--! uses: check
-- Issue a password reset for an account: the reset is stored (by its token's SHA-256) and the account names it as
-- its one live reset, so a newer reset voids any older one (`account_reset.lua` checks that the account still
-- names the reset it uses); the older reset's key is deleted too when the caller read it.
-- KEYS[1] the account (hash)   KEYS[2] the new reset (hash)   KEYS[3] optional: the account's previous reset (hash)
-- ARGV[1] the folded name   ARGV[2] the new token's SHA-256   ARGV[3] expiry, Unix ms   ARGV[4] lifetime ms
-- ARGV[5] who asked ("self-service" or the admin's name)   ARGV[6] '1' when the account must have an email address
-- Returns {'ok', name as written, email address or '', the emails' language or ''}; {'gone'} when there is no such
-- account; {'disabled'}; {'no_mail'} when ARGV[6] is '1' and the account has no address. An error reply
-- "CORRUPT <what>" when a key has the wrong type. Everything is checked before the first write.
local checks = {KEYS[1], 'hash', 'account', KEYS[2], 'hash', 'password_reset'}
if KEYS[3] then
  table.insert(checks, KEYS[3]); table.insert(checks, 'hash'); table.insert(checks, 'password_reset')
end
local damage = misfit(checks)
if damage then return redis.error_reply('CORRUPT ' .. damage) end
local account = redis.call('HMGET', KEYS[1], 'name', 'disabled', 'mail', 'mail_lang')
if not account[1] then return {'gone'} end
if account[2] == '1' then return {'disabled'} end
if ARGV[6] == '1' and (not account[3] or account[3] == '') then return {'no_mail'} end
if KEYS[3] then redis.call('DEL', KEYS[3]) end
redis.call('HSET', KEYS[2], 'folded', ARGV[1], 'expires', ARGV[3], 'by', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[1], 'reset', ARGV[2])
return {'ok', account[1], account[3] or '', account[4] or ''}
