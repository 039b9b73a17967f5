-- A moderator's loop: claim 10 pending comments, approve each one, claim again.
-- Claimed ids wait in a per-thread queue; any connection of the thread may send the next decision, so the
-- decisions of one claim run concurrently. Prints "bench-decisions <n>" and "bench-empty-claims <n>".
-- args: <bearer token> <claim limit>
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  auth = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1]}
  claim = wrk.format("POST", "/v1/moderation/claims", auth, '{"limit":' .. args[2] .. '}')
  queue, head, tail = {}, 1, 0
  decisions, empty_claims = 0, 0
end

function request()
  if head <= tail then
    local id = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("POST", "/v1/moderation/comments/" .. id .. "/decision", auth,
                      '{"action":"approve"}')
  end
  return claim
end

function response(status, headers, body)
  if status ~= 200 then return end
  if body:sub(1, 12) == '{"comments":' then
    local found = 0
    for id in body:gmatch('"id":"(%w+)"') do
      tail = tail + 1
      queue[tail] = id
      found = found + 1
    end
    if found == 0 then empty_claims = empty_claims + 1 end
  elseif body:find('"state":"approved"', 1, true) then
    decisions = decisions + 1
  end
end

function done(summary, latency, requests)
  local total, empty = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("decisions")
    empty = empty + thread:get("empty_claims")
  end
  io.write(string.format("bench-decisions %d\nbench-empty-claims %d\n", total, empty))
end
