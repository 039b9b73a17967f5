-- The search indexer's read of a batch's records (`service.indexer`): each record's `d`, `er` and `n`, in one
-- call rather than an HMGET a record (redis-py's cost of a command in a pipeline, about 64 a batch, was most of
-- the indexer's Python beyond its planning: docs/benchmarks.md, "lua/index_read.lua").
-- KEYS: the records (`keys.comment`)   ARGV: none
-- Returns a flat list, three values a record in KEYS' order: `d`, `er`, `n` (nil where a field or the record is
-- absent); an error reply "CORRUPT wrong_type:comment" when a key is not a hash (nothing is written anyway).
local out = {}
for i = 1, #KEYS do
  local row = redis.pcall('HMGET', KEYS[i], 'd', 'er', 'n')
  if row.err then return redis.error_reply('CORRUPT wrong_type:comment') end
  out[3 * i - 2], out[3 * i - 1], out[3 * i] = row[1], row[2], row[3]
end
return out
