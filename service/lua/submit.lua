--! uses: check terms gate store
-- A submission on one server (or Sentinel): the gate and the store in one atomic step, one round trip.
-- KEYS: the gate's keys (lib/gate.lua), then the store's (lib/store.lua).
-- ARGV[1] number of gate keys   ARGV[2] number of gate arguments   then the gate's arguments, then the store's.
-- Returns the gate's refusal or the store's answer; {'corrupt', what} when a key of either is damaged (checked
-- before the gate's first write, so nothing is written then).
local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local GK, GA, SK, SA = {}, {}, {}, {}
for i = 1, #KEYS do
  if i <= nk then GK[#GK + 1] = KEYS[i] else SK[#SK + 1] = KEYS[i] end
end
for i = 3, #ARGV do
  if i <= na + 2 then GA[#GA + 1] = ARGV[i] else SA[#SA + 1] = ARGV[i] end
end
local damage, seen = store_damage(SK)
if damage then return {'corrupt', damage} end
local refusal, risks = gate(GK, GA, SK[1], seen.exists)
if refusal then return refusal end
return store(SK, SA, risks, seen)
