-- Issue captchas (POST /v1/captchas) and write each issued id to <prefix>.<thread id>, one per line:
-- the submissions and image fetches of the timed runs use them.
-- args: <output prefix>
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  out = io.open(args[1] .. "." .. tid, "w")
  written = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function response(status, headers, body)
  if status == 201 then
    local id = body:match('"id":"([^"]+)"')
    if id then
      out:write(id, "\n")
      written = written + 1
      if written % 256 == 0 then out:flush() end
    end
  end
end
