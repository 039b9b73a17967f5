--! uses: check terms
-- Erase one comment's personal data, in one atomic step (`privacy.Privacy`, `retention.Retention`). Modes:
--   delete     the record keeps no personal data: name, email, IP hash, avatar, title and text are replaced by
--              a tombstone (A[7]); reasons in its history are blanked; it leaves the queues, the article's
--              public list and count (the version goes up: cached pages go stale), its reports and the
--              search terms of its sender, address and words (it stays in the n -> comment map: a tombstone); pending -> rejected, approved -> retracted; the feed and the outbox carry a
--              comment.erased event (the feed renders the record then: a tombstone, id, parent, times).
--   anonymise  the text stays; the author becomes "Bạn đọc", email, IP hash and avatar go (and their search
--              terms, and the name's words the text does not have: the caller's search block; A[7] is the
--              new record, and so the public view made from it); when approved, its public list's version goes
--              up and the feed and the outbox carry comment.anonymised.
--   purge      retention of a rejected or spam comment decided at or before A[8] ms: the record, its history
--              and reports are deleted, and it leaves every list and index (its n -> comment slot is zeroed).
--   strip_ip   retention of a decided comment's IP hash: A[7] is the record without it; it leaves the address's
--              search term. The version does not change (no moderator sees a difference that matters).
-- Feed events carry the id, the article and the approval's ms (`ap`); the feed renders the comment from the
-- record when it is read, so no copy of the erased text is left in them. A `pub` field (the public view stored
-- by versions before issue 19) goes with a delete or an anonymisation.
-- The history list is written as decide.lua writes it: when absent, the first decision's entry is made from the
-- record's fields (`dt`, `db`, `dr`, `s`, `v`) first.
-- Idempotent: a comment already erased in that mode (or, for anonymise, deleted) answers {"already"}.
--
-- K[1] comment hash   K[2] history list   K[3] pending zset   K[4] leases zset   K[5] holders hash
-- K[6] article hash   K[7] article order zset   K[8] feed stream   K[9] outbox stream   K[10] article pending zset
-- K[11] approved zset   K[12] rejected zset   K[13] spam zset   K[14] retracted zset
-- K[15] the comment's reports hash   K[16] the partition's reported zset
-- K[17] the partition's open report counts hash
-- then, last: the search block of the terms the comment leaves (lib/terms.lua; `keys.erase_keys`), by mode;
-- left alone while the comment is past the partition's indexed watermark (`n:done`, read from the block's name)
-- A[1] id   A[2] mode   A[3] the version the caller read (the rewrite A[7] was made from that record)
-- A[4] now ms   A[5] who ran it (for the history)   A[6] outbox max length
-- A[7] the rewritten record JSON (delete, anonymise, strip_ip)   A[8] purge: the cutoff ms
-- Returns {"ok", state after} | {"already"} | {"missing"} | {"stale", version} | {"skipped", state} |
-- {"corrupt", what} (lib/check.lua)
--
-- Check, then write: the record, its JSON-free fields and the type of every key written are checked, and the
-- article's counters too, before the first write.
local lists = {approved = 11, rejected = 12, spam = 13, retracted = 14}
-- The action that took a pending comment to its state (decide.lua's `firsts`).
local firsts = {approved = 'approve', rejected = 'reject', spam = 'spam', retracted = 'retract'}
local SB = split_search(KEYS)
local K, A = KEYS, ARGV
local id, mode = A[1], A[2]

local bad = misfit({K[1], 'hash', 'comment'})
if bad then return {'corrupt', bad} end
local row = redis.call('HMGET', K[1], 's', 'v', 'a', 'er', 'ap', 'dt', 'db', 'dr')
local state, version, article, erased, approved = row[1], row[2], row[3], row[4], row[5]
if not state then return {'missing'} end
if not tonumber(version) or not article then return {'corrupt', 'damaged:comment'} end
if erased == mode or (mode == 'anonymise' and erased == 'delete') then return {'already'} end
if version ~= A[3] then return {'stale', version} end
if mode == 'purge' then
  if state ~= 'rejected' and state ~= 'spam' then return {'skipped', state} end
  local decided = redis.call('ZSCORE', K[lists[state]], id)
  if not decided or tonumber(decided) > tonumber(A[8]) then return {'skipped', state} end
elseif mode == 'strip_ip' then
  if state == 'pending' then return {'skipped', state} end
elseif mode ~= 'delete' and mode ~= 'anonymise' then
  return {'error', 'unknown mode'}
end

local checks = {K[2], 'list', 'history', K[3], 'zset', 'pending', K[4], 'zset', 'leases', K[5], 'hash', 'holders',
  K[6], 'hash', 'article', K[7], 'zset', 'article_order', K[8], 'stream', 'feed', K[9], 'stream', 'outbox',
  K[10], 'zset', 'article_pending', K[11], 'zset', 'state_list', K[12], 'zset', 'state_list', K[13], 'zset',
  'state_list', K[14], 'zset', 'state_list', K[15], 'hash', 'reports', K[16], 'zset', 'reported', K[17], 'hash',
  'report_counts'}
bad = misfit(checks)
if bad then return {'corrupt', bad} end
-- The comment's number in the search index (none: stored before it). Its terms are written once the indexer
-- passed it (`indexed`: n <= the partition's `n:done`); before that it has none to leave, and the indexer
-- indexes what the record then holds (a purged one: nothing).
local number = tonumber(redis.call('HGET', K[1], 'n') or '')
local indexed = false
if number then
  indexed, bad = search_indexed(SB, number)
  if not bad then bad = search_damage(indexed and SB or {SB[1]}, number) end
  if bad then return {'corrupt', bad} end
end
local published = state == 'approved'
if published and (mode == 'delete' or mode == 'anonymise') then
  local counters = redis.call('HMGET', K[6], 'count', 'ver')
  for i, name in ipairs({'count', 'ver'}) do
    if not countable(counters[i]) then return {'corrupt', 'not_integer:article.' .. name} end
  end
end

-- Leaves the search terms of the caller's block (the sender, the address, the words it no longer has), when
-- the indexer has written them; a purge zeroes its slot either way.
local function leave_indexes()
  if indexed then
    search_remove(SB, number, mode == 'purge')
  elseif mode == 'purge' then
    search_remove({SB[1]}, number, true)
  end
end

if mode == 'strip_ip' then
  redis.call('HSET', K[1], 'd', A[7])
  leave_indexes()
  return {'ok', state}
end

if mode == 'purge' then
  redis.call('DEL', K[1], K[2], K[15])
  redis.call('ZREM', K[lists[state]], id)
  redis.call('ZREM', K[16], id)
  redis.call('HDEL', K[17], id)
  leave_indexes()
  return {'ok', 'purged'}
end

local target = state
if mode == 'delete' then
  if state == 'pending' then target = 'rejected' elseif state == 'approved' then target = 'retracted' end
end
local new_version = tonumber(version) + 1
-- The history's reasons are the moderators' words about this comment: blanked with the text.
local reason = row[8] or ''
if mode == 'delete' then
  reason = ''
  local entries = redis.call('LRANGE', K[2], 0, -1)
  for i, raw in ipairs(entries) do
    local ok, entry = pcall(cjson.decode, raw)
    if ok and type(entry) == 'table' and entry.reason and entry.reason ~= '' then
      entry.reason = ''
      redis.call('LSET', K[2], i - 1, cjson.encode(entry))
    end
  end
end
local entry = cjson.encode({at = A[4], by = A[5], from = state, to = target, action = 'erase', reason = mode,
  version = new_version})
if redis.call('EXISTS', K[2]) == 0 and firsts[state] and row[6] and row[7] then
  -- The first decision, described by the record's fields until now (as decide.lua writes it at a second change).
  redis.call('RPUSH', K[2], cjson.encode({at = row[6], by = row[7], from = 'pending', to = state,
    action = firsts[state], reason = reason, version = tonumber(version)}), entry)
else
  redis.call('RPUSH', K[2], entry)
end
if state == 'pending' and target ~= 'pending' then
  redis.call('ZREM', K[3], id)
  redis.call('ZREM', K[4], id)
  redis.call('HDEL', K[5], id)
  redis.call('ZREM', K[10], id)
end
if target ~= state then
  if lists[state] then redis.call('ZREM', K[lists[state]], id) end
  redis.call('ZADD', K[lists[target]], A[4], id)
end
leave_indexes()
local fields = {'d', A[7], 'v', tostring(new_version), 'er', mode, 's', target}
-- A reply subscription (`rs`, service.mail) goes with the address; the first decision's reason (`dr`) is in the
-- history list now; a `pub` of before issue 19 held the text.
redis.call('HDEL', K[1], 'rs', 'dr', 'pub')
local event = false
if mode == 'delete' then
  redis.call('DEL', K[15])
  redis.call('ZREM', K[16], id)
  redis.call('HDEL', K[17], id)
  if published then
    redis.call('ZREM', K[7], id)
    redis.call('HINCRBY', K[6], 'count', -1)
    redis.call('HINCRBY', K[6], 'ver', 1)
  end
  -- A retracted comment was published once: readers of the feed are told to delete it too (its earlier events
  -- are scrubbed by `privacy.py`).
  event = approved and true or false
elseif published then
  redis.call('HINCRBY', K[6], 'ver', 1)
  event = true
end
redis.call('HSET', K[1], unpack(fields))
if event then
  local kind = mode == 'delete' and 'comment.erased' or 'comment.anonymised'
  redis.call('XADD', K[8], '*', 'type', kind, 'id', id, 'article', article, 'ap', approved or '')
  redis.call('XADD', K[9], 'MAXLEN', '~', A[6], '*', 'type', kind, 'id', id, 'article', article, 'at', A[4],
    'action', 'erase')
end
return {'ok', target}
