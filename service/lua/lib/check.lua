-- Checks a script makes before its first write: Redis does not roll back a script that fails halfway, so what
-- could make a later command fail (a key of another type, a counter that is not a number) is looked at first.
-- A damaged key is answered as 'wrong_type:<name>' or 'not_integer:<name>' with nothing written; scripts that
-- answer a tagged list say {'corrupt', what}, the others an error reply "CORRUPT <what>" (`scripts.py` turns
-- both into `errors.StorageCorrupt`). `comments-service doctor` finds and mends such keys.

-- checks: key, expected type, name, key, expected type, name, ... A key may be absent (type 'none').
-- Returns what is wrong with the first misfit, or nil.
local function misfit(checks)
  for i = 1, #checks, 3 do
    local found = redis.call('TYPE', checks[i]).ok
    if found ~= 'none' and found ~= checks[i + 1] then return 'wrong_type:' .. checks[i + 2] end
  end
  return nil
end

-- A value INCR or HINCRBY can count on: absent, or a whole number.
local function countable(value)
  return not value or string.match(value, '^-?%d+$') ~= nil
end

-- A string key read without failing on another type: returns its value (or false), or nil and the damage.
local function read_counter(key, name)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' and value.err then return nil, 'wrong_type:' .. name end
  if not countable(value) then return nil, 'not_integer:' .. name end
  return value
end
