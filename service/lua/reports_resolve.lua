--! uses: check
-- A moderator resolved a comment's open reports (kept it, or retracted it): they leave the reported queue, and
-- the time from the first report to now is counted in this hour's buckets (those of `decide.lua`). The reports
-- themselves stay (a reporter's export lists them; erasure and retention remove them with the comment); a
-- client that reported before is not counted again.
-- K[1] the partition's reported zset   K[2] the partition's open report counts hash
-- K[3] this hour's hash of resolutions by time waited since the first report (bucket -> count)
-- A[1] comment id   A[2] now ms   A[3] stats TTL seconds
-- Returns {"ok", open reports, first report ms} | {"none"} (no open report) | {"corrupt", what}
--
-- Check, then write: types and the count are checked before the first write.
local buckets = {10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 604800}
local K, A = KEYS, ARGV
local bad = misfit({K[1], 'zset', 'reported', K[2], 'hash', 'report_counts', K[3], 'hash', 'report_latency'})
if bad then return {'corrupt', bad} end
local first = redis.call('ZSCORE', K[1], A[1])
if not first then return {'none'} end
local open = redis.call('HGET', K[2], A[1]) or '0'
redis.call('ZREM', K[1], A[1])
redis.call('HDEL', K[2], A[1])
local waited, bucket = (tonumber(A[2]) - tonumber(first)) / 1000, 'inf'
for _, bound in ipairs(buckets) do
  if waited <= bound then bucket = tostring(bound) break end
end
if redis.call('HINCRBY', K[3], bucket, 1) == 1 then redis.call('EXPIRE', K[3], A[3]) end
return {'ok', tonumber(open), first}
