-- The moderators' search index (service/search.py documents it; keys.py names its keys), per partition:
--   `cm:{pXX}:n`          the comment number n: INCR once per stored (or imported) comment; the record's `n`;
--   `cm:{pXX}:n:done`     the watermark: every n at or below it has its terms written (or had no record left to
--                         index); written only by index_batch.lua (`service.indexer`); its name is the `n` key's,
--                         then `:done`;
--   `cm:{pXX}:n:<chunk>`  the n -> comment map: SLOT bytes per n at ((n - 1) % CHUNK) * SLOT of chunk
--                         (n - 1) // CHUNK: the id (26 bytes), then the submitted ms (6 bytes, big-endian);
--                         zero bytes: no comment (never stored, or purged). Its name is the `n` key's, then
--                         `:<chunk>`: the script makes it from that key (the same hash tag, the same slot);
--   per term (a folded word `w:`, the sender's email digest `e:`, the address hash `i:`) the n of the comments
--   that have it, in one of three forms:
--     rare:  3-byte big-endian n's, ascending, in a field of the bucket hash `cm:{pXX}:b:<k>` (the field: the
--            term's key without its tag), while at most SMALL bytes;
--     then:  the same 3-byte n's in the term's own string key (APPEND: n only grows);
--     dense: once more than 1 comment in 24 has the term (bits then cost less), a bitmap in the term's own key:
--            bit n for comment n, bit 0 set as the bitmap's mark (a list of n's starts with a byte below 128,
--            since n < 2^23).
-- The store and import.lua give a comment its n and its slot only; the indexer (index_batch.lua) adds the n's
-- of (done, done + batch] to their terms later, many a term in one command (`terms_add_own`, `terms_grow`,
-- a bucket's fields in one HSET), and moves `done`.
-- A search block in a script's KEYS: the partition's `n` key, then (term key, its bucket) pairs
-- (`keys.search_keys`), last in KEYS. Uses lib/check.lua.

local SEARCH_SLOT, SEARCH_CHUNK, SEARCH_SMALL, SEARCH_N_MAX = 32, 65536, 96, 8388607

-- The search block of KEYS (from the partition's `n` key on): {} when there is none; and where it starts.
local function search_keys_of(K)
  local block = {}
  for i = 1, #K do
    if string.match(K[i], '^[^}]*}:n$') then
      for j = i, #K do block[#block + 1] = K[j] end
      return block, i
    end
  end
  return block, nil
end

-- KEYS without the search block (removed from the table), and the block.
local function split_search(K)
  local block, first = search_keys_of(K)
  if first then
    for i = #K, first, -1 do table.remove(K, i) end
  end
  return block
end

local function done_key(block) return block[1] .. ':done' end
local function slot_key(block, n) return block[1] .. ':' .. math.floor((n - 1) / SEARCH_CHUNK) end
local function slot_offset(n) return ((n - 1) % SEARCH_CHUNK) * SEARCH_SLOT end
local function term_field(term) return string.match(term, '^[^}]*}:(.*)$') end
local function n3(n) return string.char(math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256) end
local function at3(s, i)
  local a, b, c = string.byte(s, i, i + 2)
  return a * 65536 + b * 256 + c
end

local function ms6(t)
  local out = {}
  for i = 6, 1, -1 do
    out[i] = t % 256
    t = math.floor(t / 256)
  end
  return string.char(unpack(out))
end

-- What is wrong with a search block's keys, or nil. n: the comment's number when it has one (nil: the next).
local function search_damage(block, n)
  if #block == 0 then return nil end
  local seq, bad = read_counter(block[1], 'search_seq')
  if bad then return bad end
  n = n or (tonumber(seq or '0') + 1)
  if n > SEARCH_N_MAX then return 'full:search_seq' end
  local checks = {slot_key(block, n), 'string', 'search_ids'}
  for i = 2, #block, 2 do
    for _, c in ipairs({block[i], 'string', 'search_term', block[i + 1], 'hash', 'search_bucket'}) do
      checks[#checks + 1] = c
    end
  end
  return misfit(checks)
end

-- 3-byte n's `s` (ascending), as a bitmap (bit 0: the mark).
local function bitmap_of(s)
  local bytes = {}
  for i = 1, math.floor(at3(s, #s - 2) / 8) + 1 do bytes[i] = 0 end
  bytes[1] = 128
  for i = 1, #s - 2, 3 do
    local m = at3(s, i)
    local b = math.floor(m / 8) + 1
    bytes[b] = bit.bor(bytes[b], bit.rshift(128, m % 8))
  end
  local parts = {}
  for i = 1, #bytes, 4000 do parts[#parts + 1] = string.char(unpack(bytes, i, math.min(i + 3999, #bytes))) end
  return table.concat(parts)
end

local function is_bitmap(head) return head ~= '' and string.byte(head) >= 128 end

-- Comments join a term: `add`, their 3-byte n's, ascending, each above every n the term has. One write for
-- them all: a bitmap's bits in one BITFIELD, a string's in one APPEND, a bucket field in one HSET (index_batch.lua
-- writes a bucket's fields of a batch in one HSET); the form moves on as a comment at a time would move it (past
-- SMALL bytes: its own string; more than 1 comment in 24: a bitmap), judged on the term's n's after the batch.

-- The term's n's `s` (from its bucket field, now too long for it, or its own string) and `add`, in its own key.
local function terms_grow(term, s, add)
  if (#s / 3 + #add / 3) * 24 > at3(add, #add - 2) then
    redis.call('SET', term, bitmap_of(s .. add))
  else
    redis.call('SET', term, s .. add)
  end
end

-- A term in its own key (`head`: its first byte, not ''): bits set in a bitmap, or n's appended to a list.
-- A bitmap's bits of the batch lie in a few bytes (its n's are consecutive numbers): those bytes are read,
-- the bits ORed in here and written back in one SETRANGE, which costs Redis less than a BITFIELD of a SET per n
-- (docs/benchmarks.md, "index_batch.lua").
local function terms_add_own(term, head, add)
  if is_bitmap(head) then
    local lo = math.floor(at3(add, 1) / 8)
    local hi = math.floor(at3(add, #add - 2) / 8)
    local cur = redis.call('GETRANGE', term, lo, hi)
    local bytes = {}
    for i = 1, hi - lo + 1 do bytes[i] = string.byte(cur, i) or 0 end
    for i = 1, #add - 2, 3 do
      local m = at3(add, i)
      local b = math.floor(m / 8) - lo + 1
      bytes[b] = bit.bor(bytes[b], bit.rshift(128, m % 8))
    end
    local parts = {}
    for i = 1, #bytes, 4000 do parts[#parts + 1] = string.char(unpack(bytes, i, math.min(i + 3999, #bytes))) end
    redis.call('SETRANGE', term, lo, table.concat(parts))
    return
  end
  if (redis.call('STRLEN', term) / 3 + #add / 3) * 24 <= at3(add, #add - 2) then
    redis.call('APPEND', term, add)
    return
  end
  terms_grow(term, redis.call('GET', term), add)
end

-- 3-byte n's `s` without n (binary search), or s itself.
local function without(s, n)
  local lo, hi = 0, math.floor(#s / 3) - 1
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    local m = at3(s, mid * 3 + 1)
    if m == n then return string.sub(s, 1, mid * 3) .. string.sub(s, mid * 3 + 4) end
    if m < n then lo = mid + 1 else hi = mid - 1 end
  end
  return s
end

-- Comment n leaves a term (wherever its n's are); an emptied term is deleted.
local function term_remove(term, bucket, n)
  local head = redis.call('GETRANGE', term, 0, 0)
  if is_bitmap(head) then
    if redis.call('GETBIT', term, n) == 1 then
      redis.call('SETBIT', term, n, 0)
      if redis.call('BITCOUNT', term) <= 1 then redis.call('DEL', term) end
    end
    return
  end
  if head ~= '' then
    local s = redis.call('GET', term)
    local left = without(s, n)
    if left == '' then redis.call('DEL', term) elseif #left ~= #s then redis.call('SET', term, left) end
    return
  end
  local field = term_field(term)
  local s = redis.call('HGET', bucket, field)
  if s then
    local left = without(s, n)
    if left == '' then redis.call('HDEL', bucket, field) elseif #left ~= #s then redis.call('HSET', bucket, field, left) end
  end
end

-- A new comment in the index: its number (the record's `n`, written here when `record` is given; the store
-- writes it with the rest of the record) and its slot; its terms are the indexer's (index_batch.lua), after it.
-- After `search_damage`. Returns n (nil without a search block).
local function search_add(block, record, id, submitted)
  if #block == 0 then return nil end
  local n = redis.call('INCR', block[1])
  redis.call('SETRANGE', slot_key(block, n), slot_offset(n), id .. ms6(tonumber(submitted)))
  if record then redis.call('HSET', record, 'n', n) end
  return n
end

-- Whether comment n has its terms written (n at or below the watermark), or nil and the damage.
local function search_indexed(block, n)
  if #block == 0 then return false end
  local done, bad = read_counter(done_key(block), 'search_done')
  if bad then return nil, bad end
  return n <= tonumber(done or '0')
end

-- Comment n leaves the block's terms; `blank`: its slot too (nothing then names it). After `search_damage`.
local function search_remove(block, n, blank)
  if #block == 0 or not n then return end
  for i = 2, #block, 2 do term_remove(block[i], block[i + 1], n) end
  if blank then redis.call('SETRANGE', slot_key(block, n), slot_offset(n), string.rep('\0', SEARCH_SLOT)) end
end
