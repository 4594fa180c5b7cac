-- owned.lua - wrk script: each session (one "id.route" per line of
-- $SC_BENCH_COOKIES) is used by one request at a time, so every 200 is one
-- increment the store must hold afterwards: the benchmark counts lost saves.
-- Thread t of n takes the sessions whose line number is t modulo n; a
-- response names its session in the X-Tag header (counter.lua echoes it).
-- At the end every session's 200s and other answers go to $SC_BENCH_OUT,
-- one "cookie ok failed" line each.
local threads = {}
local made = 0

function setup(thread)
    made = made + 1
    thread:set("index", made - 1)
    threads[#threads + 1] = thread
end

function init(args)
    cookies, free, ok, failed = {}, {}, {}, {}
    local line_no = 0
    for line in io.lines(os.getenv("SC_BENCH_COOKIES")) do
        if line_no % tonumber(os.getenv("SC_BENCH_THREADS")) == index then
            cookies[#cookies + 1] = line
            free[#cookies] = true
            ok[#cookies] = 0
            failed[#cookies] = 0
        end
        line_no = line_no + 1
    end
    cursor = 0
    path = os.getenv("SC_BENCH_PATH") or "/lcounter"
end

function request()
    for _ = 1, #cookies do
        cursor = cursor % #cookies + 1
        if free[cursor] then
            free[cursor] = false
            return wrk.format("GET", path, { ["Cookie"] = "JSESSIONID=" .. cookies[cursor],
                                             ["X-Tag"] = tostring(cursor) })
        end
    end
    -- every session busy (a request timed out and never came back): a
    -- request without a session keeps the connection going
    return wrk.format("GET", "/lplain")
end

function response(status, headers, body)
    local k = tonumber(headers["X-Tag"] or "")
    if not k then
        return
    end
    free[k] = true
    if status == 200 then
        ok[k] = ok[k] + 1
    else
        failed[k] = failed[k] + 1
    end
end

function done(summary, latency, requests)
    local out = io.open(os.getenv("SC_BENCH_OUT"), "w")
    for _, t in ipairs(threads) do
        local c, o, f = t:get("cookies"), t:get("ok"), t:get("failed")
        for k = 1, #c do
            out:write(c[k], " ", o[k], " ", f[k], "\n")
        end
    end
    out:close()
end
