-- Change a comment's state: approve, reject, spam (from pending) or retract (from approved).
-- The state, the history entry, the public list, the approvals feed and the webhook outbox all change in
-- this one atomic step. The only place a comment changes state; allowed transitions:
--   pending -> approved | rejected | spam        approved -> retracted
--
-- KEYS[1] comment hash   KEYS[2] history list   KEYS[3] pending zset   KEYS[4] ready zset
-- KEYS[5] leases zset    KEYS[6] holders hash   KEYS[7] pending->article hash
-- KEYS[8] article hash   KEYS[9] article order zset   KEYS[10] article public hash
-- KEYS[11] feed stream   KEYS[12] outbox stream        KEYS[13] stats hash for this hour
-- ARGV[1] id   ARGV[2] action   ARGV[3] moderator   ARGV[4] reason   ARGV[5] expected version or ""
-- ARGV[6] now ms   ARGV[7] now ISO-8601   ARGV[8] decision id (a retried call is recognised by it)
-- ARGV[9] outbox max length   ARGV[10] stats TTL seconds
-- Returns {"ok", <the record's fields a, t, s, v, d, dt, db>} on success (also for a retry of the same
-- decision), else {"missing"} | {"stale", v} | {"decided", state} | {"not_approved", state} | {"leased", holder}
local id, action, moderator, now = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
-- One read of what the step needs (each redis.call costs more than the command itself, here).
local row = redis.call('HMGET', KEYS[1], 's', 'did', 'v', 'a', 't', 'd', 'dt', 'db')
local state, article = row[1], row[4]
if not state then return {'missing'} end
if row[2] == ARGV[8] then return {'ok', article, row[5], state, row[3], row[6], row[7], row[8]} end
local version = tonumber(row[3])
if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= version then return {'stale', tostring(version)} end

local targets = {approve = 'approved', reject = 'rejected', spam = 'spam', retract = 'retracted'}
local target = targets[action]
if action == 'retract' then
  if state ~= 'approved' then return {'not_approved', state} end
else
  if state ~= 'pending' then return {'decided', state} end
  local holder = redis.call('HGET', KEYS[6], id)
  if holder and holder ~= moderator then
    local expiry = redis.call('ZSCORE', KEYS[5], id)
    if expiry and tonumber(expiry) > tonumber(now) then return {'leased', holder} end
  end
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZREM', KEYS[5], id)
  redis.call('HDEL', KEYS[6], id)
  redis.call('HDEL', KEYS[7], id)
end

version = version + 1
local changed = {'s', target, 'v', tostring(version), 'did', ARGV[8], 'dt', now, 'db', moderator}
redis.call('RPUSH', KEYS[2], cjson.encode({at = now, by = moderator, from = state, to = target,
  action = action, reason = ARGV[4], version = version}))
-- The hour's stats expire a while after they were first counted.
if redis.call('HINCRBY', KEYS[13], action .. ':' .. moderator, 1) == 1 then
  redis.call('EXPIRE', KEYS[13], ARGV[10])
end
local event = 'comment.' .. (target == 'spam' and 'rejected' or target)
redis.call('XADD', KEYS[12], 'MAXLEN', '~', ARGV[9], '*', 'type', event, 'id', id, 'article', article,
  'at', now, 'action', action)

if target == 'approved' then
  -- The public view has exactly these fields; the email, the IP hash and the risk signals stay behind.
  local d = cjson.decode(row[6])
  local public = cjson.encode({id = id, parent_id = d.parent_id, name = d.name, title = d.title, body = d.body,
    created_at = d.created_at, approved_at = ARGV[7], avatar = d.avatar})
  local seq = redis.call('HINCRBY', KEYS[8], 'seq', 1)
  redis.call('HINCRBY', KEYS[8], 'count', 1)
  redis.call('HINCRBY', KEYS[8], 'ver', 1)
  redis.call('ZADD', KEYS[9], seq, id)
  redis.call('HSET', KEYS[10], id, public)
  changed[#changed + 1], changed[#changed + 2], changed[#changed + 3], changed[#changed + 4] = 'ap', now, 'pub', public
  redis.call('XADD', KEYS[11], '*', 'type', 'comment.approved', 'id', id, 'article', article, 'comment', public)
elseif target == 'retracted' then
  redis.call('ZREM', KEYS[9], id)
  redis.call('HDEL', KEYS[10], id)
  redis.call('HINCRBY', KEYS[8], 'count', -1)
  redis.call('HINCRBY', KEYS[8], 'ver', 1)
  redis.call('XADD', KEYS[11], '*', 'type', 'comment.retracted', 'id', id, 'article', article,
    'comment', redis.call('HGET', KEYS[1], 'pub'))
end
redis.call('HSET', KEYS[1], unpack(changed))
return {'ok', article, row[5], target, tostring(version), row[6], now, moderator}
