/*
 * curl_ev.h - one libcurl multi handle driven by the libev loop: its
 * sockets are ev_io watchers, its timer an ev_timer, so no transfer ever
 * blocks the loop. The origin client (origin/origin.c) and the S3 tier
 * (store/tier_s3.c) each own one.
 *
 * The owner adds and removes easy handles on curl_ev_multi() itself (never
 * from inside a libcurl callback: libcurl forbids it) and learns about
 * finished transfers through on_done, which runs after every socket or
 * timer action, outside libcurl's callbacks, once per finished handle.
 * on_done may remove (and free) that easy handle or add others.
 */
#ifndef SLUICE_CURL_EV_H
#define SLUICE_CURL_EV_H

#include <curl/curl.h>
#include <ev.h>

struct curl_ev;

typedef void (*curl_ev_done_fn)(void *ctx, CURL *easy, CURLcode rc);

struct curl_ev *curl_ev_new(struct ev_loop *loop, curl_ev_done_fn on_done, void *ctx);
CURLM *curl_ev_multi(struct curl_ev *ce);

/* Report the transfers that finished (what runs after every action; an
 * owner calls it after work it did outside one, e.g. adding handles). */
void curl_ev_check(struct curl_ev *ce);

/* Stops the watchers and cleans the multi up: remove every easy handle
 * first. */
void curl_ev_free(struct curl_ev *ce);

#endif
