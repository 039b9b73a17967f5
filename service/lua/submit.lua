-- Queue one comment for moderation: the record and its places in the queue, in one atomic step.
-- Idempotent: running it again for an existing id changes nothing and reports the stored fingerprint.
--
-- KEYS[1] comment hash        KEYS[2] pending zset     KEYS[3] ready zset
-- KEYS[4] pending->article    KEYS[5] article hash     KEYS[6] outbox stream
-- KEYS[7] article public hash (approved comments, to check a reply's parent)
-- ARGV[1] comment id   ARGV[2] article id   ARGV[3] submitted ms   ARGV[4] record JSON (the public view is
-- made from it at approval)   ARGV[5] parent id or ""   ARGV[6] request fingerprint   ARGV[7] outbox max length
-- Returns {"ok"} | {"exists", fingerprint} | {"closed"} | {"bad_parent"}
local id = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists', redis.call('HGET', KEYS[1], 'f') or ''}
end
if redis.call('HGET', KEYS[5], 'closed') == '1' then
  return {'closed'}
end
if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[7], ARGV[5]) == 0 then
  return {'bad_parent'}
end
redis.call('HSET', KEYS[1], 'd', ARGV[4], 'a', ARGV[2], 't', ARGV[3], 's', 'pending', 'v', '1', 'f', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[3], id)
redis.call('ZADD', KEYS[3], ARGV[3], id)
redis.call('HSET', KEYS[4], id, ARGV[2])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', 'type', 'comment.submitted', 'id', id,
  'article', ARGV[2], 'at', ARGV[3])
return {'ok'}
