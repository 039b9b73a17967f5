--! uses: check
-- Drop feed events older than the retention, remembering the newest one dropped, so that a cursor from
-- before it can be told it has a gap (410) instead of silently missing events.
-- KEYS[1] feed stream   KEYS[2] trimmed marker   ARGV[1] oldest id to keep ("<ms>-0")
-- Returns the number of events dropped; an error reply "CORRUPT wrong_type:<key>" when a key has the wrong type
-- (checked first: nothing is written then).
local damage = misfit({KEYS[1], 'stream', 'feed', KEYS[2], 'string', 'feed_trimmed'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end
local newest = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', 1)
if #newest == 0 then return 0 end
redis.call('SET', KEYS[2], newest[1][1])
return redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
