/*
 * test_net.c - the shared listener on a UNIX socket: it accepts, it replaces
 * a socket file nobody listens on, it refuses a path where another process
 * still listens or where some other file lies (and leaves that file alone),
 * and on stop it removes its socket file only if the file is still its own.
 * The file has the configured rights (0600 by default) from before it
 * listens; its directory is made when missing and refused when others
 * may write to it or own it. TCP listening is exercised by every
 * integration test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/common.h"
#include "core/net.h"

struct fixture {
    struct ev_loop *loop;
    char dir[64];
    char path[128];
    char addr[160];
    int accepted;
    int accepted_family;
};

static void on_conn(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    struct fixture *fx = ctx;
    SL_UNUSED(peerlen);
    fx->accepted++;
    fx->accepted_family = peer->sa_family;
    close(fd);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/sluice-test-net-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/http.sock", fx->dir);
    snprintf(fx->addr, sizeof(fx->addr), "unix:%s", fx->path);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    unlink(fx->path);
    rmdir(fx->dir);
    ev_loop_destroy(fx->loop);
    free(fx);
    return 0;
}

static struct sockaddr_un unix_addr(const char *path)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    return sun;
}

/* A socket bound (and, if `listening`, listening) on path; the caller closes it. */
static int bind_socket(const char *path, bool listening)
{
    struct sockaddr_un sun = unix_addr(path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    if (listening)
        assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static bool is_socket(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Connects to path and runs the loop until the listener has accepted. */
static void connect_and_accept(struct fixture *fx)
{
    struct sockaddr_un sun = unix_addr(fx->path);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&sun, sizeof(sun)), 0);
    int before = fx->accepted;
    for (int i = 0; i < 1000 && fx->accepted == before; i++)
        ev_run(fx->loop, EVRUN_ONCE);
    assert_int_equal(fx->accepted, before + 1);
    assert_int_equal(fx->accepted_family, AF_UNIX);
    close(c);
}

static void test_unix_listener_accepts_and_removes_its_file(void **state)
{
    struct fixture *fx = *state;
    struct net_listener l;
    char err[256];
    assert_int_equal(net_listener_start(&l, fx->loop, "http", fx->addr, on_conn, fx, err, sizeof(err)), 0);
    assert_false(l.tcp);
    assert_int_equal(l.port, 0);
    assert_true(is_socket(fx->path));
    connect_and_accept(fx);
    net_listener_stop(&l);
    assert_false(is_socket(fx->path));
}

static void test_stale_socket_file_is_replaced(void **state)
{
    struct fixture *fx = *state;
    close(bind_socket(fx->path, true));   /* the file stays, nobody listens */
    assert_true(is_socket(fx->path));
    struct net_listener l;
    char err[256];
    assert_int_equal(net_listener_start(&l, fx->loop, "http", fx->addr, on_conn, fx, err, sizeof(err)), 0);
    connect_and_accept(fx);
    net_listener_stop(&l);
}

static void test_live_socket_is_not_taken_over(void **state)
{
    struct fixture *fx = *state;
    int other = bind_socket(fx->path, true);
    struct net_listener l;
    char err[256] = "";
    assert_int_equal(net_listener_start(&l, fx->loop, "http", fx->addr, on_conn, fx, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "in use by another process"));
    /* The other listener still owns the path and still accepts. */
    struct sockaddr_un sun = unix_addr(fx->path);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(c);
    close(other);
}

static void test_other_file_is_left_alone(void **state)
{
    struct fixture *fx = *state;
    int f = open(fx->path, O_CREAT | O_WRONLY, 0600);
    assert_true(f >= 0);
    assert_int_equal(write(f, "keep", 4), 4);
    close(f);
    struct net_listener l;
    char err[256] = "";
    assert_int_equal(net_listener_start(&l, fx->loop, "http", fx->addr, on_conn, fx, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is not a socket"));
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 4);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

/* A missing directory is made, the agent's own and closed to others. */
static void test_missing_directory_is_made(void **state)
{
    struct fixture *fx = *state;
    char addr[200], dir[160];
    snprintf(dir, sizeof(dir), "%s/run/sluice", fx->dir);
    snprintf(addr, sizeof(addr), "unix:%s/http.sock", dir);
    struct net_listener l;
    char err[256] = "";
    assert_int_equal(net_listener_start(&l, fx->loop, "http", addr, on_conn, fx, err, sizeof(err)), 0);
    assert_int_equal(mode_of(dir), 0750 & ~umask(umask(0)));
    net_listener_stop(&l);
    rmdir(dir);
    snprintf(dir, sizeof(dir), "%s/run", fx->dir);
    rmdir(dir);
}

/* Where anyone may write, someone else could have put a socket of theirs
 * at the path before the agent (HAProxy would then ask them): refused. */
static void test_directory_others_may_write_is_refused(void **state)
{
    struct fixture *fx = *state;
    struct net_listener l;
    char err[256] = "";
    assert_int_equal(chmod(fx->dir, 0777), 0);
    assert_int_equal(net_listener_start(&l, fx->loop, "http", fx->addr, on_conn, fx, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "writable by every user"));
    assert_false(is_socket(fx->path));
    assert_int_equal(chmod(fx->dir, 01777), 0);   /* sticky, as /tmp: the same */
    assert_int_equal(net_listener_start(&l, fx->loop, "http", fx->addr, on_conn, fx, err, sizeof(err)), -1);
    assert_int_equal(chmod(fx->dir, 0700), 0);
}

/* The file's rights: 0600 unless told otherwise, whatever the umask. */
static void test_socket_file_rights(void **state)
{
    struct fixture *fx = *state;
    struct net_listener l;
    char err[256] = "";
    mode_t old = umask(0);
    assert_int_equal(net_listener_start(&l, fx->loop, "http", fx->addr, on_conn, fx, err, sizeof(err)), 0);
    assert_int_equal(mode_of(fx->path), 0600);
    connect_and_accept(fx);
    net_listener_stop(&l);
    struct net_unix_perm perm;
    assert_int_equal(net_unix_perm_parse("0660", "", &perm, err, sizeof(err)), 0);
    net_set_unix_perm(&perm);
    assert_int_equal(net_listener_start(&l, fx->loop, "http", fx->addr, on_conn, fx, err, sizeof(err)), 0);
    assert_int_equal(mode_of(fx->path), 0660);
    net_listener_stop(&l);
    umask(old);
    assert_int_equal(net_unix_perm_parse("0600", "", &perm, err, sizeof(err)), 0);
    net_set_unix_perm(&perm);
    assert_int_equal(net_unix_perm_parse("0600", "no-such-group-here", &perm, err, sizeof(err)), -1);
    assert_int_equal(net_unix_perm_parse("0999", "", &perm, err, sizeof(err)), -1);
}

/* A successor (a reload) that bound the same path keeps its file when the
 * predecessor stops. */
static void test_stop_leaves_a_successors_socket(void **state)
{
    struct fixture *fx = *state;
    struct net_listener l;
    char err[256];
    assert_int_equal(net_listener_start(&l, fx->loop, "http", fx->addr, on_conn, fx, err, sizeof(err)), 0);
    char next[160];
    snprintf(next, sizeof(next), "%s/next.sock", fx->dir);
    int successor = bind_socket(next, true);
    assert_int_equal(rename(next, fx->path), 0);
    net_listener_stop(&l);
    assert_true(is_socket(fx->path));
    close(successor);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unix_listener_accepts_and_removes_its_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_file_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_socket_is_not_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_file_is_left_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory_is_made, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_others_may_write_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_file_rights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_leaves_a_successors_socket, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
