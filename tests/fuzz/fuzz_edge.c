/*
 * fuzz_edge.c - libFuzzer target for the replies of HAProxy's runtime API
 * the agent reads (serve/edge.c): `show stat` (the edge tier's counts,
 * edge_parse_stats) and `show map` (the edge map's id, edge_map_id).
 *
 * Input layout: the whole input is one reply (NULs end it early, as a C
 * string would). Besides "no crash, no UB, no leak": a reply that parses
 * gives the same counts when parsed again, and a map id is -1 or >= 0.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/edge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct edge_counts a = { 0, 0 }, b = { 0, 0 };
    if (edge_parse_stats(s, "edge", &a)) {
        if (!edge_parse_stats(s, "edge", &b) || a.lookups != b.lookups || a.hits != b.hits)
            abort();
    }
    if (edge_map_id(s) < -1)
        abort();
    free(s);
    return 0;
}
