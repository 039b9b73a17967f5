-- Lease up to N pending comments of one partition to a moderator, oldest first.
-- Leases that ran out first go back to the queue, so a moderator who vanished loses nothing.
--
-- KEYS[1] ready zset   KEYS[2] leases zset   KEYS[3] holders hash   KEYS[4] pending zset
-- KEYS[5] pending->article hash
-- ARGV[1] now ms   ARGV[2] lease expiry ms   ARGV[3] moderator   ARGV[4] limit
-- ARGV[5] article id to keep to, or ""   ARGV[6] how many queued ids to look at when filtering
-- Returns the leased ids, oldest first.
local now, expiry, moderator, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  local submitted = redis.call('ZSCORE', KEYS[4], id)
  if submitted then redis.call('ZADD', KEYS[1], submitted, id) end
end
local leased = {}
local function lease(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], expiry, id)
  redis.call('HSET', KEYS[3], id, moderator)
  leased[#leased + 1] = id
end
if ARGV[5] == '' then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, limit - 1)) do lease(id) end
else
  local scan = tonumber(ARGV[6])
  local offset = 0
  while #leased < limit and offset < scan do
    local ids = redis.call('ZRANGE', KEYS[1], offset, offset + 99)
    if #ids == 0 then break end
    local chosen = {}
    for _, id in ipairs(ids) do
      if #leased + #chosen < limit and redis.call('HGET', KEYS[5], id) == ARGV[5] then
        chosen[#chosen + 1] = id
      end
    end
    offset = offset + #ids - #chosen
    for _, id in ipairs(chosen) do lease(id) end
  end
end
return leased
