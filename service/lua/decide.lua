--! uses: check
-- Change a comment's state: approve, reject, spam (from pending), retract (from approved) or undo.
-- The state, the history, the article's public list (its order set and count), the approvals feed and the
-- webhook outbox all change in this one atomic step. The only place a comment changes state; allowed transitions:
--   pending -> approved | rejected | spam        approved -> retracted
--   undo: approved | rejected | spam -> pending, only the last decision (a retraction is not undone), only
--   within A[11] ms of it, only by its maker (A[3]) or an admin (A[12]). Undoing an approval unpublishes it (a
--   comment.retracted event on the feed and the outbox); every undo puts the comment back in the queues at its
--   submission time, leased to whoever undid it until A[13] (a live lease: no other claim takes it first).
--   The undone decision stays counted in the hour's stats; the undo is counted as "undo".
--
-- One call decides one or more comments, in order, each as its own step with its own answer: decisions that
-- arrive together share one call (`scripts.Coalescer`), since each call costs more than a decision here.
-- KEYS and ARGV hold NK keys and NA arguments per decision; each decision's keys are read by name, K[KI.<name>]
-- (`KI` is made from `keys.DECIDE_KEYS`, which orders `keys.decide_keys`):
-- comment: the comment hash   history: its history list   pending: the partition's pending zset
-- leases: leases zset   holders: holders hash   article: article hash
-- article_order: the article's order zset (approved ids: the public list, `records.public_view` of each)
-- feed: feed stream   outbox: outbox stream   stats: stats hash for this hour   article_pending: its pending zset
-- approved, rejected, spam, retracted: the state lists (ids -> decision ms)
-- latency: this hour's hash of decisions by time waited (bucket -> count)
-- A[1] id   A[2] action   A[3] moderator   A[4] reason   A[5] expected version or ""
-- A[6] now ms   A[7] now ISO-8601 (unused: the public view's approved_at is made from `ap`)   A[8] decision id (a retried call is recognised by it)
-- A[9] outbox max length   A[10] stats TTL seconds   A[11] undo window ms   A[12] "admin" when the moderator
-- may undo anyone's decision, else ""   A[13] an undo's lease expiry ms (the comment stays with its undoer)
-- Returns one answer per decision: {"ok", <the record's fields a, t, s, v, d, dt, db>} on success (also for a
-- retry of the same decision), else {"missing"} | {"stale", v} | {"decided", state} | {"not_approved", state} |
-- {"leased", holder} | {"not_undoable", state} | {"undo_expired", state} | {"not_yours", maker} |
-- {"corrupt", what} (a key of the wrong type, a damaged record: lib/check.lua) |
-- {"error", message} (Redis refused a command of it, e.g. out of memory)
--
-- The history: a first change of state (from pending, no list yet) is described by the record's fields alone
-- (`s`, `v`, `dt`, `db`, and `dr` for a reason); the list is written from the second change on, its first entry
-- made from those fields (as `records.first_entry` makes it for readers), then the new one.
-- Feed events carry the id, the article and the approval's ms (`ap`): the feed renders the comment at read time.
--
-- Check, then write: each decision reads and checks everything that can fail (the record's fields and JSON, the
-- type of every key it writes, the article's counters) before its first write, so a failure changes nothing.
-- NK and NA are defined by a line that scripts.py puts before this text (`scripts.LAYOUTS`: the keys counted from
-- `keys.decide_keys`, the arguments `scripts.DECIDE_ARGS`), so Python and Lua split the calls alike.
local targets = {approve = 'approved', reject = 'rejected', spam = 'spam', retract = 'retracted', undo = 'pending'}
local lists = {approved = KI.approved, rejected = KI.rejected, spam = KI.spam, retracted = KI.retracted}
-- The action that took a pending comment to its state: a history's first entry, made from the record.
local firsts = {approved = 'approve', rejected = 'reject', spam = 'spam', retracted = 'retract'}
-- The upper bounds (seconds) of the buckets a decision's time waited is counted in (`moderation.LATENCY_BUCKETS`).
local buckets = {10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 604800}

-- What is wrong with the keys a decision will write, or nil.
local function damaged(K, action, target, state)
  local checks = {K[KI.history], 'list', 'history', K[KI.outbox], 'stream', 'outbox', K[KI.stats], 'hash', 'stats'}
  for _, s in ipairs({state, target}) do
    if lists[s] then
      for _, c in ipairs({K[lists[s]], 'zset', 'state_list'}) do checks[#checks + 1] = c end
    end
  end
  if state == 'pending' then
    for _, c in ipairs({K[KI.latency], 'hash', 'latency'}) do checks[#checks + 1] = c end
  end
  local more = {}
  if action ~= 'retract' then
    more = {K[KI.pending], 'zset', 'pending', K[KI.leases], 'zset', 'leases', K[KI.holders], 'hash', 'holders',
      K[KI.article_pending], 'zset', 'article_pending'}
  end
  local published = target == 'approved' or target == 'retracted' or state == 'approved'
  if published then
    for _, c in ipairs({K[KI.article], 'hash', 'article', K[KI.article_order], 'zset', 'article_order',
        K[KI.feed], 'stream', 'feed'}) do
      more[#more + 1] = c
    end
  end
  for _, c in ipairs(more) do checks[#checks + 1] = c end
  local damage = misfit(checks)
  if damage or not published then return damage end
  local counters = redis.call('HMGET', K[KI.article], 'seq', 'count', 'ver')
  for i, name in ipairs({'seq', 'count', 'ver'}) do
    if not countable(counters[i]) then return 'not_integer:article.' .. name end
  end
  return nil
end

local function decide(K, A)
  local id, action, moderator, now = A[1], A[2], A[3], A[6]
  local target = targets[action]
  if not target then return {'error', 'unknown action'} end
  local bad = misfit({K[KI.comment], 'hash', 'comment'})
  if bad then return {'corrupt', bad} end
  -- One read of what the step needs (each redis.call costs more than the command itself, here).
  local row = redis.call('HMGET', K[KI.comment], 's', 'did', 'v', 'a', 't', 'd', 'dt', 'db', 'ap', 'dr')
  local state, article = row[1], row[4]
  if not state then return {'missing'} end
  if row[2] == A[8] then return {'ok', article, row[5], state, row[3], row[6], row[7], row[8]} end
  local version = tonumber(row[3])
  if not version or not article then return {'corrupt', 'damaged:comment'} end
  if A[5] ~= '' and tonumber(A[5]) ~= version then return {'stale', tostring(version)} end

  if target == 'approved' and state == 'pending' then
    -- The public view is made from the record at every read (`records.public_view`): a record that cannot be
    -- read is refused before anything is written, rather than published unreadable.
    local read, d = pcall(cjson.decode, row[6] or '')
    if not read or type(d) ~= 'table' then return {'corrupt', 'bad_json:comment'} end
  end
  if action == 'retract' then
    if state ~= 'approved' then return {'not_approved', state} end
    if not row[9] then return {'corrupt', 'damaged:comment'} end
    bad = damaged(K, action, target, state)
    if bad then return {'corrupt', bad} end
  elseif action == 'undo' then
    if not lists[state] or state == 'retracted' then return {'not_undoable', state} end
    local decided = tonumber(row[7])
    if not decided or tonumber(now) - decided > tonumber(A[11]) then return {'undo_expired', state} end
    if row[8] ~= moderator and A[12] ~= 'admin' then return {'not_yours', row[8] or ''} end
    if state == 'approved' and not row[9] then return {'corrupt', 'damaged:comment'} end
    bad = damaged(K, action, target, state)
    if bad then return {'corrupt', bad} end
    -- Back in the queues at its submission time, where it was before the decision, and leased to whoever undid
    -- it rather than claimable (a live lease: claims skip it): the one who changed their mind decides again. The
    -- leases and holders keys were checked with the others above.
    redis.call('ZADD', K[KI.pending], row[5], id)
    redis.call('ZADD', K[KI.leases], A[13], id)
    redis.call('HSET', K[KI.holders], id, moderator)
    redis.call('ZADD', K[KI.article_pending], row[5], id)
  else
    if state ~= 'pending' then return {'decided', state} end
    bad = damaged(K, action, target, state)
    if bad then return {'corrupt', bad} end
    local holder = redis.call('HGET', K[KI.holders], id)
    if holder and holder ~= moderator then
      local expiry = redis.call('ZSCORE', K[KI.leases], id)
      if expiry and tonumber(expiry) > tonumber(now) then return {'leased', holder} end
    end
    redis.call('ZREM', K[KI.pending], id)
    redis.call('ZREM', K[KI.leases], id)
    redis.call('HDEL', K[KI.holders], id)
    redis.call('ZREM', K[KI.article_pending], id)
  end

  version = version + 1
  local changed = {'s', target, 'v', tostring(version), 'did', A[8], 'dt', now, 'db', moderator}
  if action == 'undo' then
    changed = {'s', target, 'v', tostring(version), 'did', A[8]}
    -- `pub`: the public view stored by versions before issue 19, gone with the approval it showed.
    redis.call('HDEL', K[KI.comment], 'dt', 'db', 'ap', 'dr', 'pub')
  end
  local entry = cjson.encode({at = now, by = moderator, from = state, to = target, action = action,
    reason = A[4], version = version})
  if redis.call('EXISTS', K[KI.history]) == 1 then
    redis.call('RPUSH', K[KI.history], entry)
    if row[10] then redis.call('HDEL', K[KI.comment], 'dr') end
  elseif state == 'pending' then
    -- The first change: the fields written below describe it (`dr` only for a reason).
    if A[4] ~= '' then
      changed[#changed + 1] = 'dr'
      changed[#changed + 1] = A[4]
    end
  else
    -- The second: the first entry, from the fields as they were, then this one.
    local first = firsts[state] and row[7] and row[8] and cjson.encode({at = row[7], by = row[8],
      from = 'pending', to = state, action = firsts[state], reason = row[10] or '', version = version - 1})
    if first then redis.call('RPUSH', K[KI.history], first, entry) else redis.call('RPUSH', K[KI.history], entry) end
    if row[10] then redis.call('HDEL', K[KI.comment], 'dr') end
  end
  -- After the history's RPUSH: out of memory, Redis refuses a script's first write that needs memory, and a
  -- retraction's first write must be that one, not a ZREM that would go through.
  if lists[state] then redis.call('ZREM', K[lists[state]], id) end
  if lists[target] then redis.call('ZADD', K[lists[target]], now, id) end
  if state == 'pending' then
    local waited, bucket = (tonumber(now) - tonumber(row[5])) / 1000, 'inf'
    for _, bound in ipairs(buckets) do
      if waited <= bound then bucket = tostring(bound) break end
    end
    if redis.call('HINCRBY', K[KI.latency], bucket, 1) == 1 then redis.call('EXPIRE', K[KI.latency], A[10]) end
  end
  -- The hour's stats expire a while after they were first counted.
  if redis.call('HINCRBY', K[KI.stats], action .. ':' .. moderator, 1) == 1 then
    redis.call('EXPIRE', K[KI.stats], A[10])
  end
  -- An undo tells the outbox only of an unpublished approval: no event type says "queued again".
  local event = 'comment.' .. (target == 'spam' and 'rejected' or target)
  if action == 'undo' then event = state == 'approved' and 'comment.retracted' or nil end
  if event then
    -- The reason goes with it for the author's rejection notice (`service.mail`); webhooks leave it out.
    redis.call('XADD', K[KI.outbox], 'MAXLEN', '~', A[9], '*', 'type', event, 'id', id, 'article', article,
      'at', now, 'action', action, 'reason', A[4])
  end

  if target == 'approved' then
    local seq = redis.call('HINCRBY', K[KI.article], 'seq', 1)
    redis.call('HINCRBY', K[KI.article], 'count', 1)
    redis.call('HINCRBY', K[KI.article], 'ver', 1)
    redis.call('ZADD', K[KI.article_order], seq, id)
    changed[#changed + 1] = 'ap'
    changed[#changed + 1] = now
    redis.call('XADD', K[KI.feed], '*', 'type', 'comment.approved', 'id', id, 'article', article, 'ap', now)
  elseif target == 'retracted' or state == 'approved' then
    redis.call('ZREM', K[KI.article_order], id)
    redis.call('HINCRBY', K[KI.article], 'count', -1)
    redis.call('HINCRBY', K[KI.article], 'ver', 1)
    redis.call('XADD', K[KI.feed], '*', 'type', 'comment.retracted', 'id', id, 'article', article, 'ap', row[9])
  end
  redis.call('HSET', K[KI.comment], unpack(changed))
  if action == 'undo' then return {'ok', article, row[5], target, tostring(version), row[6], false, false} end
  return {'ok', article, row[5], target, tostring(version), row[6], now, moderator}
end

local answers = {}
for i = 0, #KEYS / NK - 1 do
  local K, A = {}, {}
  for j = 1, NK do K[j] = KEYS[NK * i + j] end
  for j = 1, NA do A[j] = ARGV[NA * i + j] end
  -- A decision that fails (a refused write, a damaged record) is that decision's answer; the others go on, as
  -- they would have in calls of their own.
  local ok, answer = pcall(decide, K, A)
  if not ok then answer = {'error', type(answer) == 'table' and answer.err or tostring(answer)} end
  answers[i + 1] = answer
end
return answers
