# The Varnish arm of the anchors group (template: tests/bench/bench_anchors.py
# replaces the @NAME@ tokens). varnishd runs with file storage
# (-s file,<work>/varnish_storage.bin,<size>) and listens on a UNIX socket
# for HAProxy (haproxy-nginx.cfg, the same edge config as the nginx arm).
# Tuned like the nginx arm, so the comparison is fair:
#   - 200s are kept 30 days (nginx: proxy_cache_valid 200 30d);
#   - request coalescing (the waiting list) and streaming (beresp.do_stream)
#     are Varnish's defaults and stay on: followers of a fill read the
#     object while it arrives;
#   - backend connections are kept alive (Varnish's default pool);
#   - X-Cache-Status says HIT (obj.hits > 0) or MISS, as nginx's
#     $upstream_cache_status does, so the harness can tell them apart.
# HAProxy sends /generic/<speed>/<tag>/<file>; the origin serves
# /<speed>/<tag>/<file>, so the backend request drops the /generic prefix,
# as nginx's proxy_pass http://origin/ does.

vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
    .connect_timeout = 5s;
    .first_byte_timeout = 300s;
    .between_bytes_timeout = 300s;
}

sub vcl_recv {
    if (req.url == "/_bench/healthz") {
        return (synth(200, "ok"));
    }
}

sub vcl_backend_fetch {
    set bereq.url = regsub(bereq.url, "^/generic/", "/");
}

sub vcl_backend_response {
    if (beresp.status == 200) {
        set beresp.ttl = 30d;
    }
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache-Status = "HIT";
    } else {
        set resp.http.X-Cache-Status = "MISS";
    }
}
