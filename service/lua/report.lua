--! uses: check
-- A reader reports an approved comment: counted once per client (its keyed address hash) and comment.
-- K[1] comment hash   K[2] the comment's reports hash (client hash -> report JSON)
-- K[3] the partition's reported zset (comments with open reports -> first report ms)
-- K[4] the partition's open report counts hash (comment id -> reports since the last resolution)
-- K[5] the reporter's email digest zset (comments reported -> ms), written only when A[5] is "1"
-- A[1] comment id   A[2] client hash   A[3] the report (JSON)   A[4] now ms   A[5] "1" when the reporter gave an email
-- Returns {"ok", open reports} (counted) | {"counted", open reports} (this client already reported it) |
-- {"missing"} | {"not_approved", state} | {"corrupt", what} (lib/check.lua)
--
-- Check, then write: the type of every key and the count are checked before the first write.
local K, A = KEYS, ARGV
local bad = misfit({K[1], 'hash', 'comment', K[2], 'hash', 'reports', K[3], 'zset', 'reported', K[4], 'hash',
  'report_counts', K[5], 'zset', 'reports_by_email'})
if bad then return {'corrupt', bad} end
local state = redis.call('HGET', K[1], 's')
if not state then return {'missing'} end
if state ~= 'approved' then return {'not_approved', state} end
local open = redis.call('HGET', K[4], A[1])
if not countable(open) then return {'corrupt', 'not_integer:report_counts'} end
if redis.call('HSETNX', K[2], A[2], A[3]) == 0 then return {'counted', tonumber(open or '0')} end
local count = redis.call('HINCRBY', K[4], A[1], 1)
redis.call('ZADD', K[3], 'NX', A[4], A[1])
if A[5] == '1' then redis.call('ZADD', K[5], A[4], A[1]) end
return {'ok', count}
