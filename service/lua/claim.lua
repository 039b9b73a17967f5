--! uses: check
-- Lease up to N pending comments to a moderator: the oldest claimable ones over all the partitions given.
-- Leases that ran out first go back to the queue, so a moderator who vanished loses nothing.
-- One partition's keys on a Redis Cluster; on one server, every partition's at once, so a claim is one step.
--
-- KEYS: five per partition: ready zset, leases zset, holders hash, pending zset, pending->article hash;
-- kept to one article: its partition's five, then KEYS[6] the article's pending zset
-- ARGV[1] now ms   ARGV[2] lease expiry ms   ARGV[3] moderator   ARGV[4] limit
-- ARGV[5] "article" to keep to the article of KEYS[6], or ""
-- Returns the leased ids, oldest first (by submission time; a tie goes to the partition given first); an error
-- reply "CORRUPT wrong_type:<key>" when a key it reads or writes has the wrong type (checked before the first
-- write, so nothing is written then).
local now, expiry, moderator, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local partitions = math.floor(#KEYS / 5)
local function key(partition, n) return KEYS[5 * (partition - 1) + n] end

local checks = {}
local function expect(k, kind, name)
  for _, item in ipairs({k, kind, name}) do checks[#checks + 1] = item end
end
for p = 1, partitions do
  expect(key(p, 1), 'zset', 'ready')
  expect(key(p, 2), 'zset', 'leases')
  expect(key(p, 3), 'hash', 'holders')
  expect(key(p, 4), 'zset', 'pending')
end
if KEYS[5 * partitions + 1] then expect(KEYS[5 * partitions + 1], 'zset', 'article_pending') end
local damage = misfit(checks)
if damage then return redis.error_reply('CORRUPT ' .. damage) end

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
  -- The article's own queue, oldest first: claimable are those still in `ready` (not leased). The cost grows
  -- with the article's pending comments, whatever the size of the partition's queue. Leasing leaves an id in the
  -- article's queue (it is still pending), so the offset moves past every id read.
  local offset = 0
  while #leased < limit do
    local ids = redis.call('ZRANGE', KEYS[6], offset, offset + 99)
    if #ids == 0 then break end
    offset = offset + #ids
    for _, id in ipairs(ids) do
      if #leased < limit and redis.call('ZSCORE', key(1, 1), id) then lease(1, id) end
    end
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
