-- One fixed request, with a method, a body and headers that wrk's command line cannot give.
-- args: <method> <body or ""> ["Name: value" ...]
function init(args)
  wrk.method = args[1]
  if args[2] ~= "" then
    wrk.body = args[2]
    wrk.headers["Content-Type"] = "application/json"
  end
  for i = 3, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
end
