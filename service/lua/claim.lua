--! uses: check
-- Lease up to N pending comments to a moderator: the oldest claimable ones over all the partitions given.
-- Claimable is pending without a live lease: no entry in `leases`, or one that ran out (a moderator who vanished
-- loses nothing: the claim that reaches the comment takes the lease over). There is no queue of claimable ids of
-- its own: the claim walks `pending` (or the article's pending zset) oldest first and skips the ids with a live
-- lease. What it skips is bounded by the live leases, the comments moderators hold now (each holds a few dozen
-- for minutes), not by the queue's length, so the walk reads about N plus the live leases' ids at most.
-- One partition's keys on a Redis Cluster; on one server, every partition's at once, so a claim is one step.
--
-- KEYS: three per partition: leases zset, holders hash, pending zset;
-- kept to one article: its partition's three, then KEYS[4] the article's pending zset
-- ARGV[1] now ms   ARGV[2] lease expiry ms   ARGV[3] moderator   ARGV[4] limit
-- ARGV[5] "article" to keep to the article of KEYS[4], or ""
-- Returns the leased ids, oldest first (by submission time; a tie goes to the partition given first); an error
-- reply "CORRUPT wrong_type:<key>" when a key it reads or writes has the wrong type (checked before the first
-- write, so nothing is written then).
local now, expiry, moderator, limit = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local by_article = ARGV[5] ~= ''
local partitions = by_article and 1 or math.floor(#KEYS / 3)
local function key(partition, n) return KEYS[3 * (partition - 1) + n] end

local checks = {}
local function expect(k, kind, name)
  for _, item in ipairs({k, kind, name}) do checks[#checks + 1] = item end
end
for p = 1, partitions do
  expect(key(p, 1), 'zset', 'leases')
  expect(key(p, 2), 'hash', 'holders')
  expect(key(p, 3), 'zset', 'pending')
end
if by_article then expect(KEYS[4], 'zset', 'article_pending') end
local damage = misfit(checks)
if damage then return redis.error_reply('CORRUPT ' .. damage) end

-- Whether partition p's comment is claimable: no lease, or one that ran out. One ZSCORE an id; once a partition
-- has shown a few live leases, its live leases are read at once (as many as moderators hold) and looked up in
-- Lua instead, so many leased comments at the head of a queue cost one read, not one command each. (The ids this
-- claim leases are behind the walk: never looked at again.)
local SKIPS_BEFORE_SET = 8
local live, skips = {}, {}
local function claimable(p, id)
  if live[p] then return not live[p][id] end
  local until_ms = redis.call('ZSCORE', key(p, 1), id)
  if not until_ms or tonumber(until_ms) <= now then return true end
  skips[p] = (skips[p] or 0) + 1
  if skips[p] >= SKIPS_BEFORE_SET then
    live[p] = {}
    for _, leased_id in ipairs(redis.call('ZRANGEBYSCORE', key(p, 1), '(' .. ARGV[1], '+inf')) do
      live[p][leased_id] = true
    end
  end
  return false
end

local leased = {}
local function lease(p, id)
  redis.call('ZADD', key(p, 1), expiry, id)
  redis.call('HSET', key(p, 2), id, moderator)
  leased[#leased + 1] = id
end

-- A queue read oldest first, a page at a time (each page twice the last, up to 256 entries), from `size`.
local function cursor(p, queue, size)
  return {p = p, queue = queue, page = {}, i = 1, rank = 0, size = size, ended = false}
end

-- The cursor's next claimable entry, {id, score}, or nil at the queue's end.
local function next_claimable(c)
  while true do
    if c.i > #c.page then
      if c.ended then return nil end
      c.page = redis.call('ZRANGE', c.queue, c.rank, c.rank + c.size - 1, 'WITHSCORES')
      c.i = 1
      c.rank = c.rank + #c.page / 2
      c.ended = #c.page / 2 < c.size
      c.size = math.min(c.size * 2, 256)
      if #c.page == 0 then return nil end
    end
    local id, score = c.page[c.i], c.page[c.i + 1]
    c.i = c.i + 2
    if claimable(c.p, id) then return {id, tonumber(score)} end
  end
end

if by_article then
  -- The article's own queue, oldest first: the cost grows with the article's pending comments and the live
  -- leases among them, whatever the size of the partition's queue. Leasing leaves an id in the queue (it is
  -- still pending): the cursor moves past every id read.
  local queue = cursor(1, KEYS[4], math.min(math.max(limit, 1), 256))
  while #leased < limit do
    local found = next_claimable(queue)
    if not found then break end
    lease(1, found[1])
  end
  return leased
end

-- Merge the partitions' queues, oldest first. Each queue's head is its next claimable entry, looked for when
-- its previous head was taken: the first read of each queue is one entry, far cheaper than `limit` entries with
-- their scores from every partition; a queue that gives more reads more at a time.
local queues, heads = {}, {}
for p = 1, partitions do
  queues[p] = cursor(p, key(p, 3), 1)
  heads[p] = next_claimable(queues[p])
end
while #leased < limit do
  local best
  for p = 1, partitions do
    if heads[p] and (not best or heads[p][2] < heads[best][2]) then best = p end
  end
  if not best then break end
  lease(best, heads[best][1])
  heads[best] = next_claimable(queues[best])
end
return leased
