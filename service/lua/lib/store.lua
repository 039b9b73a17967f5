-- Queue one comment for moderation: the record and its places in the queue, in one atomic step.
-- Idempotent: running it again for an existing id changes nothing and reports the stored fingerprint.
--
-- K[1] comment hash        K[2] pending zset (the queue: claimable while it has no live lease, claim.lua)
-- K[3] article hash        K[4] outbox stream
-- K[5] article order zset (approved comments, to check a reply's parent)
-- K[6] article pending zset (the article's own queue, for filters and claims kept to the article)
-- K[7] optional, last: the search block (lib/terms.lua), the partition's `n` key alone (`keys.submit_keys`): the
-- comment gets its number n and its slot in the n -> comment map; its terms (the sender's email digest, the
-- address hash, its words) are written after it by the indexer (`service.indexer`, index_batch.lua)
-- A[1] comment id   A[2] article id   A[3] submitted ms   A[4] record JSON, ending with its "risk" list (the
-- public view is made from it at approval)   A[5] parent id or ""   A[6] request fingerprint (32 hex)
-- A[7] outbox max length
-- risks: the gate's signals, added to the record's "risk" list.
-- Returns {"ok"} | {"exists", fingerprint} | {"closed"} | {"bad_parent"} | {"corrupt", what} (lib/check.lua)
--
-- Check, then write: `store_damage` looks at the type of every key the store reads or writes before anything is
-- written (on one server, before the gate writes too: submit.lua), so a damaged key changes nothing.

-- What is wrong with the store's keys, or nil.
local function store_damage(K)
  local checks = {K[1], 'hash', 'comment', K[2], 'zset', 'pending', K[3], 'hash', 'article', K[4], 'stream', 'outbox',
    K[5], 'zset', 'article_order', K[6], 'zset', 'article_pending'}
  return misfit(checks) or search_damage((search_keys_of(K)))
end

-- checked: true when the caller has already run `store_damage` on these keys.
local function store(K, A, risks, checked)
  local id = A[1]
  if not checked then
    local damage = store_damage(K)
    if damage then return {'corrupt', damage} end
  end
  if redis.call('EXISTS', K[1]) == 1 then
    return {'exists', redis.call('HGET', K[1], 'f') or ''}
  end
  if redis.call('HGET', K[3], 'closed') == '1' then
    return {'closed'}
  end
  if A[5] ~= '' and not redis.call('ZSCORE', K[5], A[5]) then
    return {'bad_parent'}
  end
  local record = A[4]
  if #risks > 0 then
    -- The record ends with `"risk":[...]}` (`Submissions._gate_and_store` writes it so): extend that list.
    local head = string.sub(record, 1, -3)
    local comma = string.sub(head, -1) == '[' and '' or ','
    record = head .. comma .. '"' .. table.concat(risks, '","') .. '"]}'
  end
  redis.call('HSET', K[1], 'd', record, 'a', A[2], 't', A[3], 's', 'pending', 'v', '1', 'f', A[6])
  redis.call('ZADD', K[2], A[3], id)
  redis.call('ZADD', K[6], A[3], id)
  search_add((search_keys_of(K)), K[1], id, A[3])
  redis.call('XADD', K[4], 'MAXLEN', '~', A[7], '*', 'type', 'comment.submitted', 'id', id,
    'article', A[2], 'at', A[3])
  return {'ok'}
end
