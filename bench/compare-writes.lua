-- The write workloads of bench/compare, for wrk. bench/compare writes one script per workload:
-- these parameters, then this file.
--   method       "PUT" or "POST"
--   resources    0: every request to the URL's path; N: round-robin over <path>/1 ... <path>/N
--   body_file    the body sent with every write (read once)
--   conditional  true: If-Match with the current tag. Each connection GETs until a response has
--                brought the tag (the backend answers every resource with the same body, so
--                one tag serves them all), then takes the tag from each response's ETag field
--   known_tag    "" or that tag, given: then no GET, and answers are not read (see below)
--   stale_every  0, or N: every Nth request sends STALE_TAG instead of the current tag, and must
--                be refused with 409. Those requests and the others carry X-Request-Id
--                stale-<n> and current-<n>, which Arbiter keeps and sends back, so that each
--                answer is known to be a stale write's or not
-- With conditional, done() prints "count: NAME N" lines that bench/common.sh sums per target:
-- wrongly_refused (409 to a write with the current tag), wrongly_accepted (2xx to a stale
-- write), expected_non_2xx (the 409s to stale writes, which wrk counts as non-2xx).

local STALE_TAG = '"stale-0000"'

local file = assert(io.open(body_file, "rb"))
local body = file:read("*a")
file:close()

local headers = {["Content-Type"] = "application/json"}
local base_path = wrk.path
local sent = 0
-- known_tag: the current tag, when the script is given it (every answer then goes unread: a
-- response() callback makes wrk parse every answer's fields into Lua, which costs the client
-- more than some proxies cost); "" to learn it from the answers.
local tag = known_tag ~= "" and known_tag or nil
local reads_answers = conditional and (tag == nil or stale_every > 0)

wrongly_refused, wrongly_accepted, expected_non_2xx = 0, 0, 0

local function field(fields, name, lower)
  return fields[name] or fields[lower]
end

if resources == 0 and not conditional then
  -- The same request every time: wrk formats it once.
  wrk.method, wrk.body, wrk.headers["Content-Type"] = method, body, headers["Content-Type"]
else
  function request()
    sent = sent + 1
    local path = base_path
    if resources > 0 then path = base_path .. "/" .. ((sent - 1) % resources + 1) end
    if conditional then
      if tag == nil then return wrk.format("GET", path) end
      local stale = stale_every > 0 and sent % stale_every == 0
      headers["If-Match"] = stale and STALE_TAG or tag
      if stale_every > 0 then headers["X-Request-Id"] = (stale and "stale-" or "current-") .. sent end
    end
    return wrk.format(method, path, headers, body)
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

-- Prints the counts as "count: NAME N" lines; without reading answers, every non-2xx/3xx answer
-- (wrk's own count) was a write with the current tag refused.
local function print_counts(summary)
  for _, name in ipairs({"wrongly_refused", "wrongly_accepted", "expected_non_2xx"}) do
    local total = 0
    if reads_answers then
      for _, thread in ipairs(threads) do total = total + thread:get(name) end
    elseif name == "wrongly_refused" then
      total = summary.errors.status
    end
    io.write(string.format("count: %s %d\n", name, total))
  end
end

if conditional then
  function done(summary, latency, requests)
    print_counts(summary)
  end
end

if reads_answers then
  function response(status, fields, answer)
    tag = field(fields, "ETag", "etag") or tag
    local id = field(fields, "X-Request-Id", "x-request-id") or ""
    if id:sub(1, 6) == "stale-" then
      if status == 409 then
        expected_non_2xx = expected_non_2xx + 1
      elseif status < 300 then
        wrongly_accepted = wrongly_accepted + 1
      end
    elseif status == 409 then
      wrongly_refused = wrongly_refused + 1
    end
  end
end
