--! uses: check
-- Take due deliveries for one attempt each. Atomic, so of several deliverers reading the same candidates only
-- the first takes each one: the others find its score moved past now.
--
-- KEYS[1] due zset   KEYS[2] webhooks hash   KEYS[3] recent zset   KEYS[4..] delivery hashes (candidates)
-- ARGV[1] now ms   ARGV[2] lease ms   ARGV[3] max attempts   ARGV[4] done TTL s   ARGV[5..] delivery ids
-- Returns a flat list, five items per leased delivery: id, attempt, webhook JSON, event type, body; an error reply
-- "CORRUPT wrong_type:<key>" when a shared key has the wrong type.
--
-- Check, then write: every candidate is read and checked before the first write. A damaged delivery (not a hash,
-- or its attempts not a number) is left as it is, for `comments-service doctor` to report; the others go on.
local now, lease, max_attempts = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local damage = misfit({KEYS[1], 'zset', 'due', KEYS[2], 'hash', 'webhooks', KEYS[3], 'zset', 'recent'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end

local due = {}
for i = 4, #KEYS do
  local id = ARGV[i + 1]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    local d = redis.pcall('HMGET', KEYS[i], 'webhook', 'type', 'body', 'attempts', 'state')
    if not d.err then
      local hook = d[1] and redis.call('HGET', KEYS[2], d[1])
      local settled = not d[1] or not hook or d[5] == 'delivered' or d[5] == 'failed'
      if settled or (d[4] and countable(d[4])) then due[#due + 1] = {i, id, d, hook} end
    end
  end
end

local out = {}
for _, candidate in ipairs(due) do
  local i, id, d, hook = candidate[1], candidate[2], candidate[3], candidate[4]
  if not d[1] or not hook then
    -- the record expired, or its webhook was deleted: nothing left to deliver
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[3], id)
  elseif d[5] == 'delivered' or d[5] == 'failed' then
    redis.call('ZREM', KEYS[1], id)
  elseif tonumber(d[4]) >= max_attempts then
    -- the process making the last attempt died before recording it
    redis.call('HSET', KEYS[i], 'state', 'failed', 'updated', ARGV[1], 'error', 'no outcome recorded')
    redis.call('HDEL', KEYS[i], 'next')
    redis.call('EXPIRE', KEYS[i], ARGV[4])
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[3], now, id)
  else
    local attempt = redis.call('HINCRBY', KEYS[i], 'attempts', 1)
    redis.call('ZADD', KEYS[1], now + lease, id)
    table.insert(out, id)
    table.insert(out, tostring(attempt))
    table.insert(out, hook)
    table.insert(out, d[2])
    table.insert(out, d[3])
  end
end
return out
