--! uses: check
-- Lease up to N pending comments to a moderator: the oldest claimable ones over all the partitions given.
-- Claimable is pending without a live lease: no entry in `leases`, or one that ran out (a moderator who vanished
-- loses nothing: the claim that reaches the comment takes the lease over). There is no queue of claimable ids of
-- its own (a pending comment costs no entry beyond `pending`): the claim walks `pending` oldest first and skips
-- the ids with a live lease.
--
-- Partition-wide claims start at the partition's claim hint (`keys.claim_hint`, a small hash) instead of the
-- queue's head, so undecided claims at the head cost nothing to later claims:
--   `from`  a score S: every pending entry scored below S has a live lease (expiring after `swept`);
--   `swept` the ms up to which ran-out leases were looked at.
-- A claim first sweeps the leases that ran out since `swept` (each seen once: its pending score lowers S), then
-- walks `pending` from S, then sets S to the first claimable entry it left (the partition's head; ties at S are
-- read again). Whatever makes an entry below S claimable lowers S itself: a release (lease.lua), a new comment
-- (lib/store.lua: workers' clocks differ), an import (import.lua); `doctor --repair` deletes a hint that is ahead
-- (`claim_hint_ahead`). No hint (a new partition, or one the doctor deleted): the walk starts at the queue's head.
-- What the walk reads is then about N plus the live leases at or after S (those of article claims and undos).
-- A claim kept to one article walks the article's pending zset from its head, as before: bounded by the
-- article's own leased comments; it leaves the hint alone (what it leases is live; what it passes is unchanged).
-- One partition's keys on a Redis Cluster; on one server, every partition's at once, so a claim is one step.
--
-- KEYS: four per partition: leases zset, holders hash, pending zset, claim hint hash (`keys.claim_keys`);
-- kept to one article: its partition's leases, holders, pending, then KEYS[4] the article's pending zset
-- ARGV[1] now ms   ARGV[2] lease expiry ms   ARGV[3] moderator   ARGV[4] limit
-- ARGV[5] "article" to keep to the article of KEYS[4]; "plan" to lease nothing and write nothing, answering the
--         scores of the `limit` oldest claimable entries instead (the planner of a claim on a Redis Cluster,
--         `Moderation._oldest_claimable`, one partition a call); or ""
-- ARGV[6] optional, tests only: "count" to answer {leased ids, entries read} (pending entries and swept leases)
-- Returns the leased ids, oldest first (by submission time; a tie goes to the partition given first); an error
-- reply "CORRUPT wrong_type:<key>" when a key it reads or writes has the wrong type (checked before the first
-- write, so nothing is written then).
local now, expiry, moderator, limit = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local by_article = ARGV[5] == 'article'
local planning = ARGV[5] == 'plan'
local counting = ARGV[6] == 'count'
local stride = by_article and 3 or 4
local partitions = by_article and 1 or math.floor(#KEYS / 4)
local function key(partition, n) return KEYS[stride * (partition - 1) + n] end
-- Scores and times go to Redis through '%d' (Lua writes numbers with 14 digits).
local function ms(x) return string.format('%d', x) end

local checks = {}
local function expect(k, kind, name)
  for _, item in ipairs({k, kind, name}) do checks[#checks + 1] = item end
end
for p = 1, partitions do
  expect(key(p, 1), 'zset', 'leases')
  expect(key(p, 2), 'hash', 'holders')
  expect(key(p, 3), 'zset', 'pending')
  if not by_article then expect(key(p, 4), 'hash', 'claim_hint') end
end
if by_article then expect(KEYS[4], 'zset', 'article_pending') end
local damage = misfit(checks)
if damage then return redis.error_reply('CORRUPT ' .. damage) end

local reads = 0  -- pending entries and swept leases read (answered in the tests' "count" mode)
local leased = {}  -- the ids leased; planning: the scores that would be
local function lease(p, id, score)
  if planning then
    leased[#leased + 1] = ms(score)
    return
  end
  redis.call('ZADD', key(p, 1), expiry, id)
  redis.call('HSET', key(p, 2), id, moderator)
  leased[#leased + 1] = id
end
local function answer()
  if counting then return {leased, reads} end
  return leased
end

-- A queue read oldest first, a page at a time (each page twice the last, up to 256 entries), from rank `rank`.
-- claimable(p, id, score): whether the entry may be leased.
local function cursor(p, queue, size, rank, claimable)
  return {p = p, queue = queue, page = {}, i = 1, rank = rank, size = size, ended = false, claimable = claimable}
end

-- The cursor's next claimable entry, {id, score}, or nil at the queue's end; c.last: the score last read.
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
    local id, score = c.page[c.i], tonumber(c.page[c.i + 1])
    c.i = c.i + 2
    reads = reads + 1
    c.last = score
    if c.claimable(c.p, id, score) then return {id, score} end
  end
end

if by_article then
  -- The article's own queue, oldest first: the cost grows with the article's pending comments and the live
  -- leases among them, whatever the size of the partition's queue. Leasing leaves an id in the queue (it is
  -- still pending): the cursor moves past every id read. One ZSCORE an id; once a few live leases showed, the
  -- partition's live leases are read at once (as many as moderators hold) and looked up in Lua instead.
  local SKIPS_BEFORE_SET = 8
  local live, skips = nil, 0
  local function claimable(_, id)
    if live then return not live[id] end
    local until_ms = redis.call('ZSCORE', key(1, 1), id)
    if not until_ms or tonumber(until_ms) <= now then return true end
    skips = skips + 1
    if skips >= SKIPS_BEFORE_SET then
      live = {}
      for _, leased_id in ipairs(redis.call('ZRANGEBYSCORE', key(1, 1), '(' .. ARGV[1], '+inf')) do
        live[leased_id] = true
      end
    end
    return false
  end
  local queue = cursor(1, KEYS[4], math.min(math.max(limit, 1), 256), 0, claimable)
  while #leased < limit do
    local found = next_claimable(queue)
    if not found then break end
    lease(1, found[1], found[2])
  end
  return answer()
end

-- Each partition's hint: sweep the leases that ran out since `swept`, lowering S to their pending scores.
-- `horizon`: the new `swept` (never moved back: workers' clocks differ by a few ms). A damaged value is read as
-- no hint.
local from, horizon, blocked = {}, {}, {}
for p = 1, partitions do
  local hint = redis.call('HMGET', key(p, 4), 'from', 'swept')
  local s, swept = tonumber(hint[1]), tonumber(hint[2])
  if not s or not swept then
    horizon[p] = now
  else
    horizon[p] = math.max(swept, now)
    if now > swept then
      for _, id in ipairs(redis.call('ZRANGEBYSCORE', key(p, 1), '(' .. ms(swept), ms(now))) do
        reads = reads + 1
        local score = tonumber(redis.call('ZSCORE', key(p, 3), id))
        if score and score < s then s = score end
      end
    end
    from[p] = s
  end
end

-- Whether partition p's comment is claimable: no lease, or one that ran out (one ZSCORE an id: the walk from S
-- meets few live leases). A lease live now but ending at or before the new `swept` (a claim whose clock is
-- behind another's) is never swept again: S stays at or below its entry (`blocked`).
local function claimable(p, id, score)
  local until_ms = redis.call('ZSCORE', key(p, 1), id)
  if not until_ms then return true end
  until_ms = tonumber(until_ms)
  if until_ms <= now then return true end
  if until_ms <= horizon[p] and (not blocked[p] or score < blocked[p]) then blocked[p] = score end
  return false
end

-- Merge the partitions' queues, oldest first. Each queue's head is its next claimable entry, looked for when
-- its previous head was taken: the first read of each queue is one entry, far cheaper than `limit` entries with
-- their scores from every partition; a queue that gives more reads more at a time.
local queues, heads = {}, {}
for p = 1, partitions do
  local rank = from[p] and redis.call('ZCOUNT', key(p, 3), '-inf', '(' .. ms(from[p])) or 0
  queues[p] = cursor(p, key(p, 3), 1, rank, claimable)
  heads[p] = next_claimable(queues[p])
end
while #leased < limit do
  local best
  for p = 1, partitions do
    if heads[p] and (not best or heads[p][2] < heads[best][2]) then best = p end
  end
  if not best then break end
  lease(best, heads[best][1], heads[best][2])
  heads[best] = next_claimable(queues[best])
end

-- The new S: the partition's head (claimable, not taken), else the last entry read (every entry read was taken
-- or has a live lease), else unchanged; never past a lease the sweep will not see again. A plan leaves it.
if planning then return answer() end
for p = 1, partitions do
  local s = heads[p] and heads[p][2] or queues[p].last or from[p]
  if s and blocked[p] and blocked[p] < s then s = blocked[p] end
  if s then redis.call('HSET', key(p, 4), 'from', ms(s), 'swept', ms(horizon[p])) end
end
return answer()
