-- Open or close commenting on an article; the version bump invalidates cached public lists.
-- KEYS[1] article hash   ARGV[1] "1" to close, "0" to open
-- Returns the article's new version.
redis.call('HSET', KEYS[1], 'closed', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'ver', 1)
