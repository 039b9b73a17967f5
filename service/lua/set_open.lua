--! uses: check
-- Open or close commenting on an article; the version bump invalidates cached public lists.
-- KEYS[1] article hash   ARGV[1] "1" to close, "0" to open
-- Returns the article's new version; an error reply "CORRUPT <what>" when the article's key is not a hash or its
-- version not a number (checked first: nothing is written then).
local damage = misfit({KEYS[1], 'hash', 'article'})
if not damage and not countable(redis.call('HGET', KEYS[1], 'ver')) then damage = 'not_integer:article.ver' end
if damage then return redis.error_reply('CORRUPT ' .. damage) end
redis.call('HSET', KEYS[1], 'closed', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'ver', 1)
