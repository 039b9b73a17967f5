--! uses: check terms store
-- The store alone, on a Redis Cluster, after the gate passed.
-- KEYS and ARGV[1..7]: as lib/store.lua; ARGV[8] the gate's risk signals, comma-separated.
local risks = {}
for risk in string.gmatch(ARGV[8], '[^,]+') do risks[#risks + 1] = risk end
return store(KEYS, ARGV, risks)
