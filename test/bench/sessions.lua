-- sessions.lua - wrk script: every request carries one of the session
-- cookies listed in $SC_BENCH_COOKIES (one "id.route" per line), in turn,
-- so the load spreads over many sessions and all nodes.
local cookies = {}
local next_one = 0

function init(args)
    for line in io.lines(os.getenv("SC_BENCH_COOKIES")) do
        cookies[#cookies + 1] = line
    end
    next_one = math.random(#cookies)
end

function request()
    next_one = next_one % #cookies + 1
    return wrk.format("GET", nil, { ["Cookie"] = "JSESSIONID=" .. cookies[next_one] })
end
