--! uses: check
-- Renew or release a moderator's leases (claims) on comments of one partition. Only the holder's own leases
-- change: an id leased to someone else, not leased, or no longer pending is answered as not held. A lease that
-- ran out but was not taken by another claim is still its holder's to renew (claim.lua moves it only when it
-- hands the comment to someone). A released comment is claimable again: pending without a lease; the claim hint's
-- `from` (claim.lua) is lowered to it, so the next claim walks from there.
--
-- KEYS[1] leases zset   KEYS[2] holders hash   KEYS[3] pending zset   KEYS[4] claim hint hash
-- ARGV[1] "renew" or "release"   ARGV[2] moderator   ARGV[3] new lease expiry ms (renew; ignored on release)
-- ARGV[4...] comment ids
-- Returns the ids held (renewed or released), in the order given; an error reply "CORRUPT wrong_type:<key>"
-- when a key has the wrong type (checked before the first write, so nothing is written then).
local damage = misfit({KEYS[1], 'zset', 'leases', KEYS[2], 'hash', 'holders', KEYS[3], 'zset', 'pending',
  KEYS[4], 'hash', 'claim_hint'})
if damage then return redis.error_reply('CORRUPT ' .. damage) end
local mode, moderator, expiry = ARGV[1], ARGV[2], ARGV[3]
if mode ~= 'renew' and mode ~= 'release' then return redis.error_reply('unknown mode') end

local held = {}
local from = mode == 'release' and tonumber(redis.call('HGET', KEYS[4], 'from')) or nil
local lowest
for i = 4, #ARGV do
  local id = ARGV[i]
  local pending = redis.call('ZSCORE', KEYS[3], id)
  if pending and redis.call('HGET', KEYS[2], id) == moderator and redis.call('ZSCORE', KEYS[1], id) then
    if mode == 'renew' then
      redis.call('ZADD', KEYS[1], expiry, id)
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      local score = tonumber(pending)
      if from and score < from and (not lowest or score < lowest) then lowest = score end
    end
    held[#held + 1] = id
  end
end
if lowest then redis.call('HSET', KEYS[4], 'from', string.format('%d', lowest)) end
return held
