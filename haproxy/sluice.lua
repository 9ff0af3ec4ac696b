-- sluice.lua - HAProxy's half of the agent's inline hits.
--
-- For a plain GET of a small cached object the agent's SPOP reply carries
-- the whole answer: verdict "inline", txn.sluice.hdrs (the hit's header
-- lines, "Name: value\r\n" each, Cache-Status included) and txn.sluice.body
-- (the body, binary). haproxy.cfg hands such requests to this service, which
-- sends them as a 200 without a second hop to the agent's HTTP side.
--
-- The agent has already validated the object exactly as for an HTTP hit;
-- this service only copies bytes. Loaded with lua-load-per-thread: each
-- HAProxy thread has its own Lua state, so no lock is shared between them.

core.register_service("sluice_inline", "http", function(applet)
    local body = applet:get_var("txn.sluice.body")
    local hdrs = applet:get_var("txn.sluice.hdrs")
    if body == nil or hdrs == nil then
        -- haproxy.cfg only routes here when both are set; never guess.
        local msg = "inline answer without body\n"
        applet:set_status(502)
        applet:add_header("content-type", "text/plain")
        applet:add_header("cache-control", "no-store")
        applet:add_header("content-length", tostring(#msg))
        applet:start_response()
        applet:send(msg)
        return
    end
    applet:set_status(200)
    for name, value in hdrs:gmatch("([^:\r\n]+): ([^\r\n]*)\r\n") do
        applet:add_header(name, value)
    end
    applet:add_header("content-length", tostring(#body))
    applet:start_response()
    applet:send(body)
end)
