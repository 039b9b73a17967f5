-- Approve comments one by one: each request decides the next id of a file (ids split between the threads so no
-- two threads decide the same one). Prints "bench-decisions <n>" (approvals answered 200) and "bench-wraps <n>"
-- (a thread that ran out of ids starts again: those repeats answer 409, counted as errors).
-- args: <bearer token> <ids file> <thread count, default 2>
local threads, counter = {}, 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1]}
  local nthreads = tonumber(args[3] or "2")
  reqs, pos, wraps, decisions = {}, 0, 0, 0
  local index = 0
  for id in io.lines(args[2]) do
    if index % nthreads == tid then
      reqs[#reqs + 1] = wrk.format("POST", "/v1/moderation/comments/" .. id .. "/decision", headers,
                                   '{"action":"approve"}')
    end
    index = index + 1
  end
end

function request()
  pos = pos + 1
  if pos > #reqs then pos, wraps = 1, wraps + 1 end
  return reqs[pos]
end

function response(status, headers, body)
  if status == 200 then decisions = decisions + 1 end
end

function done(summary, latency, requests)
  local total, wrapped = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("decisions")
    wrapped = wrapped + thread:get("wraps")
  end
  io.write(string.format("bench-decisions %d\nbench-wraps %d\n", total, wrapped))
end
