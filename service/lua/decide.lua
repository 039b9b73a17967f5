-- Change a comment's state: approve, reject, spam (from pending) or retract (from approved).
-- The state, the history entry, the public list, the approvals feed and the webhook outbox all change in
-- this one atomic step. The only place a comment changes state; allowed transitions:
--   pending -> approved | rejected | spam        approved -> retracted
--
-- One call decides one or more comments, in order, each as its own step with its own answer: decisions that
-- arrive together share one call (`moderation._Coalescer`), since each call costs more than a decision here.
-- KEYS and ARGV hold 13 keys and 10 arguments per decision; for each one:
-- K[1] comment hash   K[2] history list   K[3] pending zset   K[4] ready zset
-- K[5] leases zset    K[6] holders hash   K[7] pending->article hash
-- K[8] article hash   K[9] article order zset   K[10] article public hash
-- K[11] feed stream   K[12] outbox stream        K[13] stats hash for this hour
-- A[1] id   A[2] action   A[3] moderator   A[4] reason   A[5] expected version or ""
-- A[6] now ms   A[7] now ISO-8601   A[8] decision id (a retried call is recognised by it)
-- A[9] outbox max length   A[10] stats TTL seconds
-- Returns one answer per decision: {"ok", <the record's fields a, t, s, v, d, dt, db>} on success (also for a
-- retry of the same decision), else {"missing"} | {"stale", v} | {"decided", state} | {"not_approved", state} |
-- {"leased", holder} | {"error", message} (Redis refused a command of it, e.g. out of memory)
local targets = {approve = 'approved', reject = 'rejected', spam = 'spam', retract = 'retracted'}

local function decide(K, A)
  local id, action, moderator, now = A[1], A[2], A[3], A[6]
  -- One read of what the step needs (each redis.call costs more than the command itself, here).
  local row = redis.call('HMGET', K[1], 's', 'did', 'v', 'a', 't', 'd', 'dt', 'db')
  local state, article = row[1], row[4]
  if not state then return {'missing'} end
  if row[2] == A[8] then return {'ok', article, row[5], state, row[3], row[6], row[7], row[8]} end
  local version = tonumber(row[3])
  if A[5] ~= '' and tonumber(A[5]) ~= version then return {'stale', tostring(version)} end

  local target = targets[action]
  local public
  if target == 'approved' then
    -- Made before anything is written, so a record that cannot be read changes nothing.
    -- The public view has exactly these fields; the email, the IP hash and the risk signals stay behind.
    local d = cjson.decode(row[6])
    public = cjson.encode({id = id, parent_id = d.parent_id, name = d.name, title = d.title, body = d.body,
      created_at = d.created_at, approved_at = A[7], avatar = d.avatar})
  end
  if action == 'retract' then
    if state ~= 'approved' then return {'not_approved', state} end
  else
    if state ~= 'pending' then return {'decided', state} end
    local holder = redis.call('HGET', K[6], id)
    if holder and holder ~= moderator then
      local expiry = redis.call('ZSCORE', K[5], id)
      if expiry and tonumber(expiry) > tonumber(now) then return {'leased', holder} end
    end
    redis.call('ZREM', K[3], id)
    redis.call('ZREM', K[4], id)
    redis.call('ZREM', K[5], id)
    redis.call('HDEL', K[6], id)
    redis.call('HDEL', K[7], id)
  end

  version = version + 1
  local changed = {'s', target, 'v', tostring(version), 'did', A[8], 'dt', now, 'db', moderator}
  redis.call('RPUSH', K[2], cjson.encode({at = now, by = moderator, from = state, to = target,
    action = action, reason = A[4], version = version}))
  -- The hour's stats expire a while after they were first counted.
  if redis.call('HINCRBY', K[13], action .. ':' .. moderator, 1) == 1 then
    redis.call('EXPIRE', K[13], A[10])
  end
  local event = 'comment.' .. (target == 'spam' and 'rejected' or target)
  redis.call('XADD', K[12], 'MAXLEN', '~', A[9], '*', 'type', event, 'id', id, 'article', article,
    'at', now, 'action', action)

  if target == 'approved' then
    local seq = redis.call('HINCRBY', K[8], 'seq', 1)
    redis.call('HINCRBY', K[8], 'count', 1)
    redis.call('HINCRBY', K[8], 'ver', 1)
    redis.call('ZADD', K[9], seq, id)
    redis.call('HSET', K[10], id, public)
    for _, value in ipairs({'ap', now, 'pub', public}) do changed[#changed + 1] = value end
    redis.call('XADD', K[11], '*', 'type', 'comment.approved', 'id', id, 'article', article, 'comment', public)
  elseif target == 'retracted' then
    redis.call('ZREM', K[9], id)
    redis.call('HDEL', K[10], id)
    redis.call('HINCRBY', K[8], 'count', -1)
    redis.call('HINCRBY', K[8], 'ver', 1)
    redis.call('XADD', K[11], '*', 'type', 'comment.retracted', 'id', id, 'article', article,
      'comment', redis.call('HGET', K[1], 'pub'))
  end
  redis.call('HSET', K[1], unpack(changed))
  return {'ok', article, row[5], target, tostring(version), row[6], now, moderator}
end

local answers = {}
for i = 0, #KEYS / 13 - 1 do
  local K, A = {}, {}
  for j = 1, 13 do K[j] = KEYS[13 * i + j] end
  for j = 1, 10 do A[j] = ARGV[10 * i + j] end
  -- A decision that fails (a refused write, a damaged record) is that decision's answer; the others go on, as
  -- they would have in calls of their own.
  local ok, answer = pcall(decide, K, A)
  if not ok then answer = {'error', type(answer) == 'table' and answer.err or tostring(answer)} end
  answers[i + 1] = answer
end
return answers
