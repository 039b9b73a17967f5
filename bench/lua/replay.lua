-- Replay a file of pre-generated requests, one per line: METHOD <tab> PATH <tab> JSON BODY [<tab> IDEMPOTENCY KEY].
-- Thread i of n sends the lines whose index is i modulo n, so no two threads send the same request
-- (each submission carries its own single-use captcha). When a thread runs out it starts again from its
-- first line; the harness counts those wraps and reports them, since repeats fail (captcha already used).
-- args: <requests file> <thread count>
local threads, counter = {}, 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[2])
  reqs, pos, wraps = {}, 0, 0
  local index = 0
  for line in io.lines(args[1]) do
    if index % nthreads == tid then
      local method, path, rest = line:match("^(%u+)\t(%S+)\t(.*)$")
      local body, key = rest:match("^(.*)\t(%S+)$")
      local headers = {["Content-Type"] = "application/json"}
      if key then headers["Idempotency-Key"] = key else body = rest end
      reqs[#reqs + 1] = wrk.format(method, path, headers, body)
    end
    index = index + 1
  end
end

function request()
  pos = pos + 1
  if pos > #reqs then
    pos, wraps = 1, wraps + 1
  end
  return reqs[pos]
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("wraps")
  end
  io.write(string.format("bench-wraps %d\n", total))
end
