-- sluice.lua - Lua HTTP mode: the sluice verdict without SPOE.
--
-- `http-request lua.sluice_verdict` asks the agent's HTTP side
-- (GET /_sluice/verdict, agent/src/serve/verdict_http.c) what to do with the
-- request, with the arguments the SPOE "lookup" message carries, and sets
-- the variables the SPOE filter sets, so haproxy/haproxy-lua.cfg routes on
-- them with the same rules as haproxy/haproxy.cfg:
--
--   txn.sluice.verdict      hit | fill | pass | busy | reject | redirect
--                           (never inline: a hit goes to the agent's HTTP side)
--   txn.sluice.retry_after  busy: seconds (integer)
--   txn.sluice.status       reject: 400, 404 or 414 (integer)
--   txn.sluice.reason       reject: one line
--   txn.sluice.location     redirect: the path to send a 301 to
--   txn.sluice.err          set instead of a verdict on any failure:
--                           "down", "timeout", "status <n>", "bad answer",
--                           "error"
--
-- Fail-open: any failure leaves txn.sluice.verdict unset (the request goes
-- to its origin) and sets txn.sluice.err.
-- One exception: a 414 to the verdict request means the request's target
-- is too long for the agent (request_target_max at most 8k): verdict
-- reject, status 414, as the SPOE edge answers it.
--
-- Agent address: the SLUICE_HTTP_ADDR environment variable, in HAProxy's
-- server address form ("unix@/run/sluice/http.sock" or "127.0.0.1:8092"),
-- read when this file is loaded: the file `sluice --print-haproxy` writes
-- sets it (`setenv`) and must be loaded first; an existing config sets it
-- with its own `setenv` line before `lua-load-per-thread`.
--
-- Health flag: HAProxy 2.6's httpclient retries a failed request 3 times
-- (about 3 s when a TCP address refuses, 4 x the timeout when the agent
-- does not answer), and 2.6 has no core.set_var for a process-wide
-- variable. So each thread's Lua state (lua-load-per-thread) runs its own
-- health task, which asks GET /_sluice/healthz every HEALTH_INTERVAL_MS and
-- keeps a flag in that state; a verdict request that fails also lowers it.
-- While the flag is down, requests fail open at once (err "down") without
-- asking; the next healthy poll raises it. Flips are logged at "warning"
-- ("sluice: agent down ...", "sluice: agent up ...").
--
-- Timeouts (milliseconds, overridable by environment variables at load):
--   SLUICE_LUA_VERDICT_TIMEOUT_MS  default 120: per attempt; with 2.6's
--                                  3 retries a hung agent costs a request at
--                                  most about 4 x 120 = 480 ms, in line with
--                                  the SPOE edge's `timeout processing 500ms`.
--                                  The agent answers from memory, in about a
--                                  millisecond.
--   SLUICE_LUA_HEALTH_TIMEOUT_MS   default 200 (per attempt)
--   SLUICE_LUA_HEALTH_INTERVAL_MS  default 1000
--
-- Invariants: one httpclient object per request (2.6's may not be reused);
-- nothing here blocks (httpclient and core.msleep yield); a Lua error in the
-- action fails open too (HAProxy goes on with the rules, no verdict set).

local function env_ms(name, default)
    local v = tonumber(os.getenv(name) or "")
    if v and v > 0 then
        return math.floor(v)
    end
    return default
end

local AGENT = os.getenv("SLUICE_HTTP_ADDR")
local VERDICT_TIMEOUT_MS = env_ms("SLUICE_LUA_VERDICT_TIMEOUT_MS", 120)
local HEALTH_TIMEOUT_MS = env_ms("SLUICE_LUA_HEALTH_TIMEOUT_MS", 200)
local HEALTH_INTERVAL_MS = env_ms("SLUICE_LUA_HEALTH_INTERVAL_MS", 1000)

if not AGENT or AGENT == "" then
    error("sluice.lua: SLUICE_HTTP_ADDR is not set (setenv it before lua-load-per-thread)")
end

-- This thread's view of the agent: optimistic at start (a failed verdict
-- lowers it at once), then whatever the last health poll or verdict said.
local agent_up = true

local function set_up(up, why)
    if up ~= agent_up then
        core.Warning(string.format("sluice: agent %s (thread %d): %s", up and "up" or "down",
                                   core.thread or 0, why))
    end
    agent_up = up
end

-- One GET to the agent's HTTP side: the response table, or nil and why.
local function ask(path, timeout_ms)
    local hc = core.httpclient()
    local ok, res = pcall(hc.get, hc, { url = "http://sluice" .. path, dst = AGENT, timeout = timeout_ms })
    if not ok then
        return nil, "error"
    end
    if not res or not res.status or res.status == 0 then
        return nil, "error"
    end
    return res
end

-- First value of a response header (2.6 gives each name a table of values
-- indexed from 0).
local function header(res, name)
    local v = res.headers and res.headers[name]
    if type(v) == "table" then
        return v[0] or v[1]
    end
    return v
end

local function encode(s)
    return (s:gsub("[^%w%-%._~/]", function(c)
        return string.format("%%%02X", c:byte())
    end))
end

local function flag(b)
    return b and "1" or "0"
end

local function has_header(txn, name)
    return (txn.f:req_hdr_cnt(name) or 0) > 0
end

-- The query of /_sluice/verdict: the SPOE lookup's arguments.
local function verdict_query(txn)
    local args = {
        "route=" .. encode(txn:get_var("txn.sluice_route") or ""),
        "method=" .. encode(txn.f:method() or ""),
        "path=" .. encode(txn.f:path() or ""),
        "auth=" .. flag(txn:get_var("txn.sluice_creds") or has_header(txn, "authorization")),
        "range=" .. flag(has_header(txn, "range")),
        "inm=" .. flag(has_header(txn, "if-none-match")),
        "ims=" .. flag(has_header(txn, "if-modified-since")),
    }
    local query = txn.f:query()
    if query ~= nil then
        args[#args + 1] = "query=" .. encode(query)
    end
    local accept = txn.f:req_fhdr("accept")
    if accept ~= nil then
        args[#args + 1] = "accept=" .. encode(accept)
    end
    return table.concat(args, "&")
end

-- The agent's answer as txn.sluice.* variables; false when it is not one.
local function apply(txn, res)
    local verdict = header(res, "sluice-verdict")
    if not verdict or verdict == "inline" then
        return false
    end
    local retry_after = tonumber(header(res, "sluice-retry-after") or "")
    local status = tonumber(header(res, "sluice-status") or "")
    local reason = header(res, "sluice-reason")
    local location = header(res, "sluice-location")
    if retry_after then txn:set_var("txn.sluice.retry_after", math.floor(retry_after)) end
    if status then txn:set_var("txn.sluice.status", math.floor(status)) end
    if reason then txn:set_var("txn.sluice.reason", reason) end
    if location then txn:set_var("txn.sluice.location", location) end
    txn:set_var("txn.sluice.verdict", verdict)
    return true
end

local function sluice_verdict(txn)
    if not agent_up then
        txn:set_var("txn.sluice.err", "down")
        return
    end
    local t0 = core.now()
    local res, why = ask("/_sluice/verdict?" .. verdict_query(txn), VERDICT_TIMEOUT_MS)
    local t1 = core.now()
    -- the log line's spoe_ms, as the SPOE filter's set-process-time gives it
    txn:set_var("txn.sluice.process_time", (t1.sec - t0.sec) * 1000 + (t1.usec - t0.usec) // 1000)
    if res and res.status >= 500 then
        -- 503/504 are the httpclient's own: refused, or no answer in time.
        why = res.status == 504 and "timeout" or "status " .. res.status
        res = nil
    end
    if not res then
        txn:set_var("txn.sluice.err", why)
        set_up(false, "verdict request failed: " .. why)
        return
    end
    if res.status == 414 then
        -- The agent's HTTP side refused the verdict request itself as too
        -- long: the request's target is longer than the agent takes, so
        -- it is refused here as the verdict would (request_target_max).
        txn:set_var("txn.sluice.status", 414)
        txn:set_var("txn.sluice.reason", "the request target is too long")
        txn:set_var("txn.sluice.verdict", "reject")
    elseif res.status < 200 or res.status > 299 then
        txn:set_var("txn.sluice.err", "status " .. res.status)
    elseif not apply(txn, res) then
        txn:set_var("txn.sluice.err", "bad answer")
    end
end

core.register_action("sluice_verdict", { "http-req" }, sluice_verdict, 0)

-- This thread's health poll, for as long as HAProxy runs.
core.register_task(function()
    while true do
        local res, why = ask("/_sluice/healthz", HEALTH_TIMEOUT_MS)
        if res and res.status == 200 then
            set_up(true, "healthz answered 200")
        else
            set_up(false, "healthz: " .. (res and ("status " .. res.status) or why))
        end
        core.msleep(HEALTH_INTERVAL_MS)
    end
end)
