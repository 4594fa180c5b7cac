-- owned.lua - wrk script: each session (one "id.route" per line of
-- $SC_BENCH_COOKIES) is used by one request at a time, so every 200 is one
-- increment the store must hold afterwards: the benchmark counts lost saves.
-- Thread t of n takes the sessions whose line number is t modulo n; a
-- response names its session in the X-Tag header (counter.lua echoes it).
-- At the end every session's 200s and other answers go to $SC_BENCH_OUT,
-- one "cookie ok failed" line each, after a line "plain N": requests sent
-- without a session because every session was taken (a request sent on a
-- connection the server had closed never gives its session back: it is
-- taken back after 4 s).
-- wrk calls request() once in thread 0's Lua state before any connection
-- exists, to check that the request parses (script_verify_request), and
-- drops what it returns: that call gets a request without a session, or it
-- would hold one of thread 0's sessions for 4 s, and one connection in
-- sixteen would send requests without a session meanwhile.
local threads = {}
local made = 0

function setup(thread)
    made = made + 1
    thread:set("index", made - 1)
    threads[#threads + 1] = thread
end

function init(args)
    cookies, free, sent, ok, failed = {}, {}, {}, {}, {}
    local line_no = 0
    for line in io.lines(os.getenv("SC_BENCH_COOKIES")) do
        if line_no % tonumber(os.getenv("SC_BENCH_THREADS")) == index then
            cookies[#cookies + 1] = line
            free[#cookies] = true
            sent[#cookies] = 0
            ok[#cookies] = 0
            failed[#cookies] = 0
        end
        line_no = line_no + 1
    end
    cursor = 0
    plain = 0
    verifying = index == 0
    path = os.getenv("SC_BENCH_PATH") or "/lcounter"
end

local function send(k)
    free[k] = false
    sent[k] = os.time()
    return wrk.format("GET", path, { ["Cookie"] = "JSESSIONID=" .. cookies[k],
                                     ["X-Tag"] = tostring(k) })
end

function request()
    if verifying then
        verifying = false
        return wrk.format("GET", "/lplain")
    end
    for _ = 1, #cookies do
        cursor = cursor % #cookies + 1
        if free[cursor] then
            return send(cursor)
        end
    end
    -- every session taken: one whose request went out on a connection the
    -- server had closed (wrk then reconnects and never answers it) is taken
    -- back once that request is surely dead (wrk's own timeout is 2 s)
    for k = 1, #cookies do
        if os.time() - sent[k] >= 4 then
            return send(k)
        end
    end
    -- meanwhile a request without a session keeps the connection going
    plain = plain + 1
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
    local fallbacks = 0
    for _, t in ipairs(threads) do
        fallbacks = fallbacks + t:get("plain")
    end
    out:write("plain ", fallbacks, "\n")
    for _, t in ipairs(threads) do
        local c, o, f = t:get("cookies"), t:get("ok"), t:get("failed")
        for k = 1, #c do
            out:write(c[k], " ", o[k], " ", f[k], "\n")
        end
    end
    out:close()
end
