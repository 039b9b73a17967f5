-- Lease up to N pending comments to a moderator: the oldest claimable ones over all the partitions given.
-- Leases that ran out first go back to the queue, so a moderator who vanished loses nothing.
-- One partition's keys on a Redis Cluster; on one server, every partition's at once, so a claim is one step.
--
-- KEYS: five per partition: ready zset, leases zset, holders hash, pending zset, pending->article hash
-- ARGV[1] now ms   ARGV[2] lease expiry ms   ARGV[3] moderator   ARGV[4] limit
-- ARGV[5] article id to keep to, or "" (with one partition only)   ARGV[6] how many queued ids to look at when
-- filtering
-- Returns the leased ids, oldest first (by submission time; a tie goes to the partition given first).
local now, expiry, moderator, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local partitions = #KEYS / 5
local function key(partition, n) return KEYS[5 * (partition - 1) + n] end

for p = 1, partitions do
  local ready, leases, holders, pending = key(p, 1), key(p, 2), key(p, 3), key(p, 4)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 1000)) do
    redis.call('ZREM', leases, id)
    redis.call('HDEL', holders, id)
    local submitted = redis.call('ZSCORE', pending, id)
    if submitted then redis.call('ZADD', ready, submitted, id) end
  end
end

local leased = {}
local function lease(p, id)
  redis.call('ZREM', key(p, 1), id)
  redis.call('ZADD', key(p, 2), expiry, id)
  redis.call('HSET', key(p, 3), id, moderator)
  leased[#leased + 1] = id
end

if ARGV[5] ~= '' then
  local scan = tonumber(ARGV[6])
  local offset = 0
  while #leased < limit and offset < scan do
    local ids = redis.call('ZRANGE', key(1, 1), offset, offset + 99)
    if #ids == 0 then break end
    local chosen = {}
    for _, id in ipairs(ids) do
      if #leased + #chosen < limit and redis.call('HGET', key(1, 5), id) == ARGV[5] then
        chosen[#chosen + 1] = id
      end
    end
    offset = offset + #ids - #chosen
    for _, id in ipairs(chosen) do lease(1, id) end
  end
  return leased
end

-- Merge the partitions' queues, oldest first. Each queue is read one entry at a time, when its previous head was
-- taken: far cheaper than reading `limit` entries with their scores from every partition.
local function head(p, rank)
  local entry = redis.call('ZRANGE', key(p, 1), rank, rank, 'WITHSCORES')
  if entry[1] then return {entry[1], tonumber(entry[2])} end
  return nil
end
local heads, taken = {}, {}
for p = 1, partitions do
  heads[p] = head(p, 0)
  taken[p] = 0
end
local chosen = {}
while #chosen < limit do
  local best
  for p = 1, partitions do
    if heads[p] and (not best or heads[p][2] < heads[best][2]) then best = p end
  end
  if not best then break end
  chosen[#chosen + 1] = {best, heads[best][1]}
  taken[best] = taken[best] + 1
  heads[best] = head(best, taken[best])
end
for _, pick in ipairs(chosen) do lease(pick[1], pick[2]) end
return leased
