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
-- watermark's number) before the first write, so a refusal changes nothing. The checks are the reads the
-- writes need anyway (docs/benchmarks.md, "index_batch.lua"): a term's first byte (GETRANGE: its form, and a
-- WRONGTYPE error for a key of another type), each bucket's fields of the batch in one HMGET (a bucket is read
-- once however many of the batch's terms it holds), a record's `d` length (HSTRLEN); the writes then go a bucket
-- at a time (one HSET, one HDEL).
local K, A = KEYS, ARGV
local R = tonumber(A[3])
local done, bad = read_counter(K[1], 'search_done')
if bad then return {'corrupt', bad} end
if tonumber(done or '0') ~= tonumber(A[1]) then return {'moved', done or '0'} end

local changed = nil
for i = 1, R do
  local key, expected = K[i + 1], A[i + 3]
  if expected == '' then
    local found = redis.call('TYPE', key).ok
    if found ~= 'none' then
      if found ~= 'hash' then return {'corrupt', 'wrong_type:comment'} end
      changed = changed or i
    end
  else
    local length = redis.pcall('HSTRLEN', key, 'd')
    if type(length) == 'table' then return {'corrupt', 'wrong_type:comment'} end
    if not changed then
      local state = length .. ':' .. (redis.call('HGET', key, 'er') or '')
      if state ~= expected then changed = i end
    end
  end
end

-- Each term's form (its first byte), and the fields of the terms kept in a bucket, a bucket at a time.
local first_term = R + 4
local heads, buckets, order = {}, {}, {}
for i = R + 2, #K, 2 do
  local head = redis.pcall('GETRANGE', K[i], 0, 0)
  if type(head) == 'table' then return {'corrupt', 'wrong_type:search_term'} end
  heads[i] = head
  local bucket = K[i + 1]
  local b = buckets[bucket]
  if not b then
    b = {terms = {}, fields = {}}
    buckets[bucket] = b
    order[#order + 1] = bucket
  end
  if head == '' then
    b.terms[#b.terms + 1] = i
    b.fields[#b.fields + 1] = term_field(K[i])
  end
end
local held = {}
for _, bucket in ipairs(order) do
  local b = buckets[bucket]
  if #b.fields > 0 then
    local values = redis.pcall('HMGET', bucket, unpack(b.fields))
    if values.err then return {'corrupt', 'wrong_type:search_bucket'} end
    held[bucket] = values
  else
    local found = redis.call('TYPE', bucket).ok
    if found ~= 'none' and found ~= 'hash' then return {'corrupt', 'wrong_type:search_bucket'} end
  end
end
if changed then return {'changed', changed} end

for _, bucket in ipairs(order) do
  local b, values = buckets[bucket], held[bucket]
  local sets, drops = {}, {}
  for j, i in ipairs(b.terms) do
    local add = A[first_term + (i - R - 2) / 2]
    if #add >= 3 then
      local field, s = b.fields[j], values[j] or ''
      if #s + #add <= SEARCH_SMALL then
        sets[#sets + 1] = field
        sets[#sets + 1] = s .. add
      else
        if s ~= '' then drops[#drops + 1] = field end
        terms_grow(K[i], s, add)
      end
    end
  end
  if #sets > 0 then redis.call('HSET', bucket, unpack(sets)) end
  if #drops > 0 then redis.call('HDEL', bucket, unpack(drops)) end
end
for i = R + 2, #K, 2 do
  local add = A[first_term + (i - R - 2) / 2]
  if heads[i] ~= '' and #add >= 3 then terms_add_own(K[i], heads[i], add) end
end
redis.call('SET', K[1], A[2])
return {'ok'}
