--! uses: check gate
-- The gate alone, on a Redis Cluster (its keys share the {g} slot; the store's live in the article's).
-- KEYS and ARGV: as lib/gate.lua. Returns its refusal, or {'pass', risk signals...}.
local refusal, risks = gate(KEYS, ARGV, nil)
if refusal then return refusal end
return {'pass', unpack(risks)}
