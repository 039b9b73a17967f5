-- GET a list of paths in turn (one per line), each thread starting at its own offset.
-- args: <paths file> <thread count>
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    paths[#paths + 1] = wrk.format("GET", line)
  end
  pos = math.floor(#paths * tid / tonumber(args[2]))
end

function request()
  pos = pos % #paths + 1
  return paths[pos]
end
