-- wrk's requests for `foodorder bench`: POSTs to one path, each body with an id of its own.
-- Arguments after `--`: <path> <Authorization header or -> <JSON body or -, "{id}" in it becomes a unique id>.
-- At the end it writes one line of JSON with the counts and the latency percentiles (microseconds).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function init(args)
  path, authorization, template = args[1], args[2], args[3]
  sent = 0
  wrk.method = "POST"
  if template ~= "-" then
    wrk.headers["Content-Type"] = "application/json"  -- a handler without input refuses any
  end
  if authorization ~= "-" then
    wrk.headers["Authorization"] = authorization
  end
end

function request()
  sent = sent + 1
  local body = nil
  if template ~= "-" then
    body = (template:gsub("{id}", thread_number .. "-" .. sent))
  end
  return wrk.format(nil, path, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
