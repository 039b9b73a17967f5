-- Queue one comment for moderation: the record and its places in the queue, in one atomic step.
-- Idempotent: running it again for an existing id changes nothing and reports the stored fingerprint.
--
-- K[1] comment hash        K[2] pending zset (the queue: claimable while it has no live lease, claim.lua)
-- K[3] article hash        K[4] outbox stream
-- K[5] article order zset (approved comments, to check a reply's parent)
-- K[6] article pending zset (the article's own queue, for filters and claims kept to the article)
-- K[7] the partition's claim hint hash (claim.lua): its `from` is lowered to a comment stored before it (workers'
-- clocks differ by a few ms), so the comment is claimable
-- K[8] optional, last: the search block (lib/terms.lua), the partition's `n` key alone (`keys.submit_keys`): the
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

-- What is wrong with the store's keys, or nil; else false and what the store needs of what the checks read
-- (`seen`: whether the comment exists, whether the article is closed, the claim hint's `from`): the comment's
-- TYPE tells the first, the article's `closed` field (read with pcall: a key of another type is an error) the
-- second, the hint's `from` (read so too) the third, so none costs a call of its own (docs/benchmarks.md,
-- "lib/store.lua").
local function store_damage(K)
  local kind = redis.call('TYPE', K[1]).ok
  if kind ~= 'none' and kind ~= 'hash' then return 'wrong_type:comment' end
  local closed = redis.pcall('HGET', K[3], 'closed')
  if type(closed) == 'table' then return 'wrong_type:article' end
  local from = redis.pcall('HGET', K[7], 'from')
  if type(from) == 'table' then return 'wrong_type:claim_hint' end
  local checks = {K[2], 'zset', 'pending', K[4], 'stream', 'outbox',
    K[5], 'zset', 'article_order', K[6], 'zset', 'article_pending'}
  local damage = misfit(checks) or search_damage((search_keys_of(K)))
  if damage then return damage end
  return false, {exists = kind ~= 'none', closed = closed == '1', from = tonumber(from)}
end

-- seen: `store_damage`'s findings when the caller has already run it on these keys (nothing written to them
-- since), else nil.
local function store(K, A, risks, seen)
  local id = A[1]
  if not seen then
    local damage
    damage, seen = store_damage(K)
    if damage then return {'corrupt', damage} end
  end
  if seen.exists then
    return {'exists', redis.call('HGET', K[1], 'f') or ''}
  end
  if seen.closed then
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
  -- The comment's number (`search_add`) goes in with the rest of the record: one HSET.
  local n = search_add((search_keys_of(K)), nil, id, A[3])
  if n then
    redis.call('HSET', K[1], 'd', record, 'a', A[2], 't', A[3], 's', 'pending', 'v', '1', 'f', A[6], 'n', n)
  else
    redis.call('HSET', K[1], 'd', record, 'a', A[2], 't', A[3], 's', 'pending', 'v', '1', 'f', A[6])
  end
  redis.call('ZADD', K[2], A[3], id)
  if seen.from and tonumber(A[3]) < seen.from then redis.call('HSET', K[7], 'from', A[3]) end
  redis.call('ZADD', K[6], A[3], id)
  redis.call('XADD', K[4], 'MAXLEN', '~', A[7], '*', 'type', 'comment.submitted', 'id', id,
    'article', A[2], 'at', A[3])
  return {'ok'}
end
