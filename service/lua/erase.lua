--! uses: check
-- Erase one comment's personal data, in one atomic step (`privacy.Privacy`, `retention.Retention`). Modes:
--   delete     the record keeps no personal data: name, email, IP hash, avatar, title and text are replaced by
--              a tombstone (A[8]); reasons in its history are blanked; it leaves the queues, the article's
--              public list and count (the version goes up: cached pages go stale), its reports and the
--              sender's indexes; pending -> rejected, approved -> retracted; the feed and the outbox carry a
--              comment.erased event (the feed's comment is a tombstone: id, parent, times, nothing else).
--   anonymise  the text stays; the author becomes "Bạn đọc", email, IP hash and avatar go (A[8] is the
--              new record); a comment's public view (kept after a retraction too) becomes A[9]; when approved,
--              its public list's version goes up and the feed and the outbox carry comment.anonymised with it.
--   purge      retention of a rejected or spam comment decided at or before A[10] ms: the record, its history
--              and reports are deleted, and it leaves every list and index.
--   strip_ip   retention of a decided comment's IP hash: A[8] is the record without it; it leaves the address's
--              index. The version does not change (no moderator sees a difference that matters).
-- Idempotent: a comment already erased in that mode (or, for anonymise, deleted) answers {"already"}.
--
-- K[1] comment hash   K[2] history list   K[3] pending zset   K[4] ready zset   K[5] leases zset
-- K[6] holders hash   K[7] pending->article hash   K[8] article hash   K[9] article order zset
-- K[10] article public hash   K[11] feed stream   K[12] outbox stream   K[13] article pending zset
-- K[14] approved zset   K[15] rejected zset   K[16] spam zset   K[17] retracted zset   K[18] every comment zset
-- K[19] sender's email digest zset   K[20] address hash zset   K[21] the comment's reports hash
-- K[22] the partition's reported zset   K[23] the partition's open report counts hash
-- K[24...] word index zsets the comment leaves
-- A[1] id   A[2] mode   A[3] the version the caller read (the rewrite A[8] was made from that record)
-- A[4] now ms   A[5] who ran it (for the history)   A[6] outbox max length   A[7] feed tombstone JSON (delete)
-- A[8] the rewritten record JSON (delete, anonymise, strip_ip)
-- A[9] anonymise: the new public view JSON, when the comment has one (approved or retracted), else ""
-- A[10] purge: the cutoff ms
-- Returns {"ok", state after} | {"already"} | {"missing"} | {"stale", version} | {"skipped", state} |
-- {"corrupt", what} (lib/check.lua)
--
-- Check, then write: the record, its JSON-free fields and the type of every key written are checked, and the
-- article's counters too, before the first write.
local lists = {approved = 14, rejected = 15, spam = 16, retracted = 17}
local K, A = KEYS, ARGV
local id, mode = A[1], A[2]

local bad = misfit({K[1], 'hash', 'comment'})
if bad then return {'corrupt', bad} end
local row = redis.call('HMGET', K[1], 's', 'v', 'a', 'er', 'pub')
local state, version, article, erased = row[1], row[2], row[3], row[4]
if not state then return {'missing'} end
if not tonumber(version) or not article then return {'corrupt', 'damaged:comment'} end
if erased == mode or (mode == 'anonymise' and erased == 'delete') then return {'already'} end
if version ~= A[3] then return {'stale', version} end
if mode == 'purge' then
  if state ~= 'rejected' and state ~= 'spam' then return {'skipped', state} end
  local decided = redis.call('ZSCORE', K[lists[state]], id)
  if not decided or tonumber(decided) > tonumber(A[10]) then return {'skipped', state} end
elseif mode == 'strip_ip' then
  if state == 'pending' then return {'skipped', state} end
elseif mode ~= 'delete' and mode ~= 'anonymise' then
  return {'error', 'unknown mode'}
end

local checks = {K[2], 'list', 'history', K[3], 'zset', 'pending', K[4], 'zset', 'ready', K[5], 'zset', 'leases',
  K[6], 'hash', 'holders', K[7], 'hash', 'articles', K[8], 'hash', 'article', K[9], 'zset', 'article_order',
  K[10], 'hash', 'article_public', K[11], 'stream', 'feed', K[12], 'stream', 'outbox', K[13], 'zset',
  'article_pending', K[14], 'zset', 'state_list', K[15], 'zset', 'state_list', K[16], 'zset', 'state_list',
  K[17], 'zset', 'state_list', K[18], 'zset', 'search_index', K[19], 'zset', 'search_index', K[20], 'zset',
  'search_index', K[21], 'hash', 'reports', K[22], 'zset', 'reported', K[23], 'hash', 'report_counts'}
for i = 24, #K do
  for _, c in ipairs({K[i], 'zset', 'search_index'}) do checks[#checks + 1] = c end
end
bad = misfit(checks)
if bad then return {'corrupt', bad} end
local published = state == 'approved'
if published and (mode == 'delete' or mode == 'anonymise') then
  local counters = redis.call('HMGET', K[8], 'count', 'ver')
  for i, name in ipairs({'count', 'ver'}) do
    if not countable(counters[i]) then return {'corrupt', 'not_integer:article.' .. name} end
  end
  if mode == 'anonymise' and A[9] == '' then return {'corrupt', 'damaged:comment'} end
end

-- Leaves the sender's and the address's indexes (every mode), and the words it no longer has.
local function leave_indexes()
  redis.call('ZREM', K[19], id)
  redis.call('ZREM', K[20], id)
  for i = 24, #K do redis.call('ZREM', K[i], id) end
end

if mode == 'strip_ip' then
  redis.call('HSET', K[1], 'd', A[8])
  redis.call('ZREM', K[20], id)
  return {'ok', state}
end

if mode == 'purge' then
  redis.call('DEL', K[1], K[2], K[21])
  redis.call('ZREM', K[lists[state]], id)
  redis.call('ZREM', K[18], id)
  redis.call('ZREM', K[22], id)
  redis.call('HDEL', K[23], id)
  leave_indexes()
  return {'ok', 'purged'}
end

local target = state
if mode == 'delete' then
  if state == 'pending' then target = 'rejected' elseif state == 'approved' then target = 'retracted' end
end
local new_version = tonumber(version) + 1
-- The history's reasons are the moderators' words about this comment: blanked with the text.
if mode == 'delete' then
  local entries = redis.call('LRANGE', K[2], 0, -1)
  for i, raw in ipairs(entries) do
    local ok, entry = pcall(cjson.decode, raw)
    if ok and type(entry) == 'table' and entry.reason and entry.reason ~= '' then
      entry.reason = ''
      redis.call('LSET', K[2], i - 1, cjson.encode(entry))
    end
  end
end
redis.call('RPUSH', K[2], cjson.encode({at = A[4], by = A[5], from = state, to = target, action = 'erase',
  reason = mode, version = new_version}))
if state == 'pending' and target ~= 'pending' then
  redis.call('ZREM', K[3], id)
  redis.call('ZREM', K[4], id)
  redis.call('ZREM', K[5], id)
  redis.call('HDEL', K[6], id)
  redis.call('HDEL', K[7], id)
  redis.call('ZREM', K[13], id)
end
if target ~= state then
  if lists[state] then redis.call('ZREM', K[lists[state]], id) end
  redis.call('ZADD', K[lists[target]], A[4], id)
end
leave_indexes()
local fields = {'d', A[8], 'v', tostring(new_version), 'er', mode, 's', target}
-- A reply subscription (`rs`, service.mail) goes with the address.
redis.call('HDEL', K[1], 'rs')
local event
if mode == 'delete' then
  redis.call('DEL', K[21])
  redis.call('ZREM', K[22], id)
  redis.call('HDEL', K[23], id)
  redis.call('HDEL', K[1], 'pub')
  if published then
    redis.call('ZREM', K[9], id)
    redis.call('HDEL', K[10], id)
    redis.call('HINCRBY', K[8], 'count', -1)
    redis.call('HINCRBY', K[8], 'ver', 1)
    event = A[7]
  end
  -- Earlier retractions published the comment once: their feed copies are scrubbed by `privacy.py`.
  if row[5] and not published then event = A[7] end
else
  -- A retracted comment keeps its last public view (`pub`): anonymised too.
  if A[9] ~= '' then
    fields[#fields + 1] = 'pub'
    fields[#fields + 1] = A[9]
  end
  if published then
    redis.call('HSET', K[10], id, A[9])
    redis.call('HINCRBY', K[8], 'ver', 1)
    event = A[9]
  end
end
redis.call('HSET', K[1], unpack(fields))
if event then
  local kind = mode == 'delete' and 'comment.erased' or 'comment.anonymised'
  redis.call('XADD', K[11], '*', 'type', kind, 'id', id, 'article', article, 'comment', event)
  redis.call('XADD', K[12], 'MAXLEN', '~', A[6], '*', 'type', kind, 'id', id, 'article', article, 'at', A[4],
    'action', 'erase')
end
return {'ok', target}
