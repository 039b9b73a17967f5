--! uses: check terms
-- Store one imported (or restored) comment as the service itself would have stored it: the record, its history,
-- and for its state what submission and decision would have written: a pending comment's places in the queues
-- (pending and the article's pending index; claimable: no lease); an approved comment's place in the
-- article's order set and the article's count and version (and, when asked, a feed event: its id).
-- Rejected, spam and retracted comments get the record and history only. Idempotent: an id that exists already
-- changes nothing (importing a file twice adds nothing; an interrupted import runs again to completion).
--
-- K[1] comment hash        K[2] history list         K[3] pending zset     K[4] article hash
-- K[5] article order zset  K[6] article pending zset K[7] feed stream       K[8] claim hint hash (claim.lua:
-- an imported pending comment lowers its `from`: it carries an old time, and is claimable)
-- K[9 ..] optional: the indexes (zsets) the comment joins, e.g. its decided state's list (`importing.writer`),
-- one score each in ARGV's last part
-- then, last and optional: the search block, the partition's `n` key (lib/terms.lua; `importing.writer`): it gets
-- the partition's next comment number (the record's `n`, whatever `n` the fields held) and its slot; its terms
-- are written by the indexer (`service.indexer`: the importer catches it up at the end)
-- A[1] id   A[2] article id   A[3] state (pending|approved|rejected|spam|retracted)   A[4] submitted ms
-- A[5] approved comments: the order score, or "" for "approval ms (the record's `ap`) x 1000, the next free one"
-- A[6] approved comments: the parent id that must be public in the article, or "" for no check
-- A[7] "1" to add a comment.approved event to the feed (approved only), else "0"
-- A[8] F, the number of record fields   A[9] H, the number of history entries
-- A[10 .. 9+2F] field, value pairs (an approved comment's include `ap`; a `pub`, the public view that versions
-- before issue 19 stored and exported, is left out: it is made from the record)
-- then H history entries (JSON), oldest first (none: a record of one decision describes it: `records.history_entries`);
-- then one score for each of K[8 ..]
-- Returns {"ok"} | {"exists"} | {"bad_parent"} | {"invalid", what} | {"corrupt", what} (lib/check.lua)
--
-- The article form, for a restore (one key): K[1] article hash   A[1] "article" (never a comment id)
-- A[2] "1" closed, "0" open   A[3] the article's approval sequence, at least (`seq`)
-- Returns {"ok"} | {"corrupt", what}
--
-- Check, then write: every key's type, the article's counters and the arguments are checked before the first
-- write, so a refusal changes nothing.
if ARGV[1] == 'article' then
  local damage = misfit({KEYS[1], 'hash', 'article'})
  if damage then return {'corrupt', damage} end
  local row = redis.call('HMGET', KEYS[1], 'seq', 'ver', 'closed')
  if not countable(row[1]) or not countable(row[2]) then return {'corrupt', 'not_integer:article'} end
  if not string.match(ARGV[3], '^%d+$') then return {'invalid', 'sequence'} end
  if tonumber(ARGV[3]) > tonumber(row[1] or '0') then redis.call('HSET', KEYS[1], 'seq', ARGV[3]) end
  if (row[3] == '1') ~= (ARGV[2] == '1') then
    redis.call('HSET', KEYS[1], 'closed', ARGV[2])
    redis.call('HINCRBY', KEYS[1], 'ver', 1)
  end
  return {'ok'}
end

local SB = split_search(KEYS)
local id, article, state, submitted = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local valid = {pending = true, approved = true, rejected = true, spam = true, retracted = true}
if not valid[state] then return {'invalid', 'state'} end
if not string.match(submitted, '^%d+$') then return {'invalid', 'submitted'} end
local nfields, nhistory = tonumber(ARGV[8]), tonumber(ARGV[9])
if not nfields or not nhistory or 9 + 2 * nfields + nhistory + #KEYS - 8 ~= #ARGV then
  return {'invalid', 'counts'}
end
local first_history, first_score = 10 + 2 * nfields, 10 + 2 * nfields + nhistory

local damage = misfit({KEYS[1], 'hash', 'comment', KEYS[2], 'list', 'history', KEYS[3], 'zset', 'pending',
  KEYS[4], 'hash', 'article', KEYS[5], 'zset', 'article_order', KEYS[6], 'zset', 'article_pending',
  KEYS[7], 'stream', 'feed', KEYS[8], 'hash', 'claim_hint'})
for i = 9, #KEYS do
  if not damage then damage = misfit({KEYS[i], 'zset', 'index'}) end
  if not tonumber(ARGV[first_score + i - 9]) then return {'invalid', 'index_score'} end
end
if damage then return {'corrupt', damage} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
damage = search_damage(SB)
if damage then return {'corrupt', damage} end

local fields, approved = {}, nil
for i = 10, first_history - 1, 2 do
  if ARGV[i] ~= 'pub' then
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
  end
  if ARGV[i] == 'ap' then approved = ARGV[i + 1] end
end
if #fields == 0 then return {'invalid', 'counts'} end

local score
if state == 'approved' then
  if not approved or not string.match(approved, '^%d+$') then return {'invalid', 'ap'} end
  local counters = redis.call('HMGET', KEYS[4], 'seq', 'count', 'ver')
  for i, name in ipairs({'seq', 'count', 'ver'}) do
    if not countable(counters[i]) then return {'corrupt', 'not_integer:article.' .. name} end
  end
  if ARGV[6] ~= '' and not redis.call('ZSCORE', KEYS[5], ARGV[6]) then return {'bad_parent'} end
  if ARGV[5] ~= '' then
    score = tonumber(ARGV[5])
    if not score then return {'invalid', 'order'} end
  else
    -- Scores are unique within an article (a page's cursor is the last score, exclusive): the first free one
    -- from the approval's millisecond x 1000.
    local base = tonumber(approved)
    -- Lua turns numbers into text with 14 digits: every score goes to Redis through '%d'.
    score = base * 1000
    local top = redis.call('ZREVRANGEBYSCORE', KEYS[5], string.format('%d', score + 999), string.format('%d', score),
      'WITHSCORES', 'LIMIT', 0, 1)
    if top[2] then score = tonumber(top[2]) + 1 end
    while redis.call('ZCOUNT', KEYS[5], string.format('%d', score), string.format('%d', score)) > 0 do
      score = score + 1
    end
  end
end

redis.call('HSET', KEYS[1], unpack(fields))
search_add(SB, KEYS[1], id, submitted)
if nhistory > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, first_history, first_score - 1))
end
for i = 9, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[first_score + i - 9], id)
end
if state == 'pending' then
  redis.call('ZADD', KEYS[3], submitted, id)
  redis.call('ZADD', KEYS[6], submitted, id)
  local from = tonumber(redis.call('HGET', KEYS[8], 'from'))
  if from and tonumber(submitted) < from then redis.call('HSET', KEYS[8], 'from', submitted) end
elseif state == 'approved' then
  local order = string.format('%d', score)
  redis.call('ZADD', KEYS[5], order, id)
  redis.call('HINCRBY', KEYS[4], 'count', 1)
  redis.call('HINCRBY', KEYS[4], 'ver', 1)
  local seq = tonumber(redis.call('HGET', KEYS[4], 'seq') or '0')
  if score > seq then redis.call('HSET', KEYS[4], 'seq', order) end
  if ARGV[7] == '1' then
    redis.call('XADD', KEYS[7], '*', 'type', 'comment.approved', 'id', id, 'article', article, 'ap', approved)
  end
end
return {'ok'}
