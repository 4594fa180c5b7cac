-- counter.lua - the counter of test/apps/counter.cgi without a fork per
-- request, so a benchmark measures the session cluster rather than CGI.
-- mod_session hands the session in HTTP_SESSION (SessionEnv On) and takes
-- the new one from X-Replace-Session (SessionHeader).
function handle(r)
    local session = r.subprocess_env["HTTP_SESSION"] or ""
    local count = (tonumber(session:match("count=(%d+)")) or 0) + 1
    r.headers_out["X-Replace-Session"] = "count=" .. count
    r.content_type = "text/plain"
    r:puts("count=" .. count .. "\n")
    return apache2.OK
end
