-- counter.lua - the counter of test/apps/counter.cgi without a fork per
-- request, so a benchmark measures the session cluster rather than CGI.
-- mod_session hands the session in HTTP_SESSION (SessionEnv On) and takes
-- the new one from X-Replace-Session (SessionHeader).
--   ?pad=N   the session also carries N bytes under "pad" (set once, kept):
--            every request then changes one key of a big session
--   X-Tag    a request header echoed back, so a load generator can tell
--            which of its sessions a response belongs to
function handle(r)
    local session = r.subprocess_env["HTTP_SESSION"] or ""
    local count = (tonumber(session:match("count=(%d+)")) or 0) + 1
    local out = "count=" .. count
    local want = tonumber((r:parseargs() or {})["pad"] or "")
    if want and want > 0 then
        local pad = session:match("pad=([^&]*)")
        if not pad or #pad ~= want then
            pad = string.rep("p", want)
        end
        out = out .. "&pad=" .. pad
    end
    r.headers_out["X-Replace-Session"] = out
    if r.headers_in["X-Tag"] then
        r.headers_out["X-Tag"] = r.headers_in["X-Tag"]
    end
    r.content_type = "text/plain"
    r:puts("count=" .. count .. "\n")
    return apache2.OK
end
