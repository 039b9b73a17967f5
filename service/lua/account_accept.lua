--! uses: check
-- Accept an invitation: the person's account is created and the invitation used up, in one step, so an
-- invitation works once however many requests race with it.
-- KEYS[1] the invitation (hash)   KEYS[2] the account (hash)   KEYS[3] the account index (set)
-- ARGV[1] the folded name the invitation was read with   ARGV[2] the name as written   ARGV[3] role
-- ARGV[4] the password's argon2id hash   ARGV[5] now, Unix ms
-- Returns 'ok'; 'invalid' when the invitation is gone (used, expired) or names another person; 'taken' when
-- the name has an account by now (the invitation is then deleted: it can never succeed). An error reply
-- "CORRUPT <what>" when a key has the wrong type. Everything is checked before the first write.
local damage = misfit({KEYS[1], 'hash', 'invitation', KEYS[2], 'hash', 'account', KEYS[3], 'set', 'account_index'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end
if redis.call('HGET', KEYS[1], 'folded') ~= ARGV[1] then return 'invalid' end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
  return 'taken'
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'name', ARGV[2], 'role', ARGV[3], 'password', ARGV[4], 'created_at', ARGV[5],
           'disabled', '0')
redis.call('SADD', KEYS[3], ARGV[1])
return 'ok'
