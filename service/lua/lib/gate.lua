-- The gate of a submission: what the sender and the captcha decide, before anything is stored.
--
-- K[1] idempotency key (unused when A[1] is '')   K[2] the captcha's single-use marker
-- K[3] repeat counter of the text   K[4] IP reputation   K[5] email reputation   K[6..] rate-limit counters
-- A[1] request fingerprint, or '' without an Idempotency-Key   A[2] idempotency TTL s
-- A[3] captcha marker TTL ms (the rest of the captcha's life)   A[4] repeat-counter window ms
-- A[5..] for each rate-limit counter: its limit, its window ms
-- comment: the comment's key when the same script goes on to store it (one server); nil on a Cluster.
-- exists: then, whether that comment exists (the store's checks looked: lib/store.lua's `store_damage`).
--
-- Returns false and the sender's risk signals to go on, or a refusal:
--   {'exists', fingerprint}  a retry of a comment already stored (one server only)
--   {'replay'}               a retry whose first attempt may have been stored (Cluster: the caller looks)
--   {'idem_reused'}          the Idempotency-Key came with another request
--   {'captcha_used'}         the captcha was tried before
--   {'rate_limited', ms}     a limit is reached; ms until its window ends
--   {'corrupt', what}        a key of the wrong type, or a counter that is not a number (lib/check.lua)
-- Check, then write: every key is looked at (its type; a counter's value) before the first write.
local function gate_key_name(i)
  return i == 1 and 'idempotency' or i == 2 and 'captcha_marker' or i == 3 and 'seen' or i == 4 and 'reputation.ip'
    or i == 5 and 'reputation.email' or 'rate_limit'
end

local function gate(K, A, comment, exists)
  -- Every key of the gate is a string: one MGET reads them all (nil for a key that is absent or of another
  -- type), and one EXISTS of the keys it found nothing in tells whether any of those is of another type (only
  -- then is each one's TYPE looked at, to name it): two calls, not a TYPE or GET per key (docs/benchmarks.md,
  -- "lib/gate.lua").
  local counters = redis.call('MGET', unpack(K))
  local missing = {}
  for i = 1, #K do
    if not counters[i] then missing[#missing + 1] = K[i] end
  end
  if #missing > 0 and redis.call('EXISTS', unpack(missing)) > 0 then
    for i = 1, #K do
      if not counters[i] and redis.call('TYPE', K[i]).ok ~= 'none' then
        return {'corrupt', 'wrong_type:' .. gate_key_name(i)}
      end
    end
  end
  for i = 3, #K do
    if not countable(counters[i]) then return {'corrupt', 'not_integer:' .. gate_key_name(i)} end
  end
  if A[1] ~= '' and not redis.call('SET', K[1], A[1], 'NX', 'EX', A[2]) then
    local prior = redis.call('GET', K[1])
    if prior and prior ~= A[1] then return {'idem_reused'} end
    if comment == nil then return {'replay'} end
    if exists then return {'exists', redis.call('HGET', comment, 'f') or ''} end
  end
  -- One try per captcha, right or wrong: the marker is set before anything else can refuse.
  if not redis.call('SET', K[2], '1', 'NX', 'PX', A[3]) then return {'captcha_used'} end
  for i = 6, #K do
    local limit, window = tonumber(A[2 * i - 7]), A[2 * i - 6]
    local count = redis.call('INCR', K[i])
    if count == 1 then redis.call('PEXPIRE', K[i], window) end
    if count > limit then
      local ms = redis.call('PTTL', K[i])
      if ms < 0 then
        redis.call('PEXPIRE', K[i], window)
        ms = tonumber(window)
      end
      return {'rate_limited', ms}
    end
  end
  local risks = {}
  local seen = redis.call('INCR', K[3])
  if seen == 1 then redis.call('PEXPIRE', K[3], A[4]) end
  if seen > 1 then risks[#risks + 1] = 'repeated_text' end
  if tonumber(counters[4] or '0') > 0 then risks[#risks + 1] = 'ip_reputation' end
  if tonumber(counters[5] or '0') > 0 then risks[#risks + 1] = 'email_reputation' end
  return false, risks
end
