--! uses: check terms
-- The search indexer's one step in a partition (`service.indexer`): the comments numbered (done, new done] join
-- their terms (lib/terms.lua), and the watermark `n:done` moves to the new done, atomically.
-- The caller read the records and computed their terms (`search.record_terms`, as `search` reads them); this
-- script checks that nothing it relied on has moved: optimistic, several indexers may run at once.
--
-- K[1] the partition's `n:done` watermark   K[2 .. R+1] the records of the batch (the ones read)
-- K[R+2 ..] last: (term key, its bucket hash) pairs, each once
-- A[1] done as read   A[2] the new done   A[3] R
-- A[4 .. R+3] each record's state as read: "" when it did not exist (it stays absent), else
--             "<bytes of `d`>:<`er`>" (an erasure changes both, so a record erased since the read is noticed)
-- A[R+4 ..] one for each (term, bucket) pair: the n's that join it, 3 bytes each, ascending
-- Returns {"ok"} | {"moved", done} (another indexer went first: read again) |
--         {"changed", i} (the i-th record is no longer as read: read again) | {"corrupt", what} (lib/check.lua)
--
-- Check, then write: the watermark, the records and every term and bucket are checked (type, and the
-- watermark's number) before the first write, so a refusal changes nothing.
local K, A = KEYS, ARGV
local R = tonumber(A[3])
local done, bad = read_counter(K[1], 'search_done')
if bad then return {'corrupt', bad} end
if tonumber(done or '0') ~= tonumber(A[1]) then return {'moved', done or '0'} end

local checks = {}
for i = 2, R + 1 do
  checks[#checks + 1] = K[i]
  checks[#checks + 1] = 'hash'
  checks[#checks + 1] = 'comment'
end
for i = R + 2, #K, 2 do
  for _, c in ipairs({K[i], 'string', 'search_term', K[i + 1], 'hash', 'search_bucket'}) do
    checks[#checks + 1] = c
  end
end
bad = misfit(checks)
if bad then return {'corrupt', bad} end

for i = 1, R do
  local key, expected = K[i + 1], A[i + 3]
  if expected == '' then
    if redis.call('EXISTS', key) == 1 then return {'changed', i} end
  else
    local state = redis.call('HSTRLEN', key, 'd') .. ':' .. (redis.call('HGET', key, 'er') or '')
    if state ~= expected then return {'changed', i} end
  end
end

local first_term = R + 4
for i = R + 2, #K, 2 do
  local add = A[first_term + (i - R - 2) / 2]
  if #add >= 3 then terms_add(K[i], K[i + 1], add) end
end
redis.call('SET', K[1], A[2])
return {'ok'}
