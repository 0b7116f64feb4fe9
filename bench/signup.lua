-- wrk script: POST /subscriptions as JSON, a distinct address per request.
local counter = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000))

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

-- args[1]: a fill-time token from GET /subscriptions/form-token, old enough.
function init(args)
  n = 0
  token = args[1]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local body = string.format('{"email":"w%s-%d-%d@bench.example","lists":["orthopedic"],"form_token":"%s"}', prefix, id, n, token)
  return wrk.format(nil, "/subscriptions", nil, body)
end
