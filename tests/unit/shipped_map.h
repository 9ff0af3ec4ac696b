/*
 * shipped_map.h - the route map the project ships (haproxy/routes.map), as
 * text, for the unit tests of the modules that read it. test_route.c checks
 * that the real file still has these routes.
 */
#ifndef SLUICE_TEST_SHIPPED_MAP_H
#define SLUICE_TEST_SHIPPED_MAP_H

#define SHIPPED_MAP          \
    "# comment\n"            \
    "/generic/     generic\n" \
    "/npm/         npm\n"     \
    "/pypi/files/  pypi_files\n" \
    "/pypi/        pypi\n"    \
    "/crates/dl/   cargo_dl\n" \
    "/crates/      cargo_index\n" \
    "/maven/       maven\n"   \
    "/go/          go\n"

#endif
