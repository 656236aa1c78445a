-- wrk script: every request signs up a new address.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  local body = "email=load-" .. id .. "-" .. counter .. "%40example.com"
  return wrk.format("POST", "/subscriptions",
    { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end
