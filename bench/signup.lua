-- wrk script: POST /subscriptions as JSON, a distinct address and a distinct
-- form token per request (a token serves one signup).
local counter = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000))

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

-- args[1]: a file of form tokens (bench/form_tokens.py), one per line;
-- args[2]: how many threads share it (each takes every n-th line);
-- args[3]: the lists, comma-separated (default orthopedic);
-- args[4]: "name" to give each reader a name.
function init(args)
  n = 0
  lists = {}
  for slug in string.gmatch(args[3] or "orthopedic", "[^,]+") do
    lists[#lists + 1] = '"' .. slug .. '"'
  end
  lists = table.concat(lists, ",")
  named = args[4] == "name"
  tokens = {}
  local threads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % threads == id - 1 then
      tokens[#tokens + 1] = line
    end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  -- Past the end of the file tokens repeat: those signups answer 400 and
  -- show up as errors.
  local token = tokens[(n - 1) % #tokens + 1]
  local name = ""
  if named then
    name = string.format(',"name":"Reader %d-%d"', id, n)
  end
  local body = string.format('{"email":"w%s-%d-%d@bench.example","lists":[%s]%s,"form_token":"%s"}', prefix, id, n, lists, name, token)
  return wrk.format(nil, "/subscriptions", nil, body)
end
