--! uses: check
-- Take due jobs of a durable job queue (`service.jobs`) for one attempt each. Atomic, so of several workers
-- reading the same candidates only the first takes each one: the others find its score moved past now.
--
-- KEYS[1] due zset   KEYS[2] owners hash   KEYS[3] recent zset   KEYS[4..] job hashes (candidates)
-- ARGV[1] now ms   ARGV[2] lease ms   ARGV[3] max attempts   ARGV[4] done TTL s   ARGV[5..] job ids
-- Returns a flat list, five items per leased job: id, attempt, owner record, type, body; an error reply
-- "CORRUPT wrong_type:<key>" when a shared key has the wrong type.
--
-- A job whose owner is gone (or whose record expired) is dropped; one whose last attempt never recorded an
-- outcome (its process died) and that has no attempt left becomes failed (a dead letter, kept for the done TTL).
-- Jobs of webhooks written before this queue was generic name their owner in the field `webhook`.
--
-- Check, then write: every candidate is read and checked before the first write. A damaged job (not a hash, or
-- its attempts not a number) is left as it is, for `comments-service doctor` to report; the others go on.
local now, lease, max_attempts = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local damage = misfit({KEYS[1], 'zset', 'due', KEYS[2], 'hash', 'owners', KEYS[3], 'zset', 'recent'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end

local due = {}
for i = 4, #KEYS do
  local id = ARGV[i + 1]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    local d = redis.pcall('HMGET', KEYS[i], 'owner', 'type', 'body', 'attempts', 'state', 'webhook')
    if not d.err then
      d[1] = d[1] or d[6]
      local owner = d[1] and redis.call('HGET', KEYS[2], d[1])
      local settled = not d[1] or not owner or d[5] == 'delivered' or d[5] == 'failed'
      if settled or (d[4] and countable(d[4])) then due[#due + 1] = {i, id, d, owner} end
    end
  end
end

local out = {}
for _, candidate in ipairs(due) do
  local i, id, d, owner = candidate[1], candidate[2], candidate[3], candidate[4]
  if not d[1] or not owner then
    -- the record expired, or its owner was deleted: nothing left to do
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
    table.insert(out, owner)
    table.insert(out, d[2])
    table.insert(out, d[3])
  end
end
return out
