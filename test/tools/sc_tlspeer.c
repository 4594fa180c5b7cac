/* sc_tlspeer.c - a test tool: be a cluster member's TLS end, so the pytest
 * suite can speak the peer protocol (frames, HELLOs, forgeries) inside the
 * same TLS 1.3 links real members use. It links the module's own sc_tls and
 * sc_keys, so it authenticates exactly as clusterd does, and nothing more:
 * the frames it carries are the test's.
 *
 *   sc_tlspeer --connect HOST:PORT --route ROUTE --fd N
 *              (--key FILE [--key OLDER] [--key-index I] | --none
 *               | --cert C --cert-key K --ca CA [--peer ROUTE])
 *
 * It connects, completes the handshake as a client offering key I (default
 * 0) with identity ROUTE, prints one line to stdout, "ok <key id>" or
 * "fail <io|timeout|too-big|auth|not-tls> <why>" (then exits 2), and then copies
 * bytes both ways between the TLS connection and file descriptor N (one end
 * of a socketpair the test holds) until either side closes. Exit 0 after a
 * clean end, 1 on a usage error, 2 when the handshake failed, 3 when the
 * link broke.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_portable.h>
#include <apr_strings.h>

#include "sc_keys.h"
#include "sc_tls.h"

#define BUF (64 * 1024)

static void usage(const char *why)
{
    fprintf(stderr, "sc_tlspeer: %s\nusage: sc_tlspeer --connect HOST:PORT "
            "--route ROUTE --fd N (--key FILE [--key OLDER] [--key-index I] | "
            "--none | --cert C --cert-key K --ca CA [--peer ROUTE])\n", why);
    exit(1);
}

static int write_all(int fd, const char *b, apr_size_t n)
{
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w <= 0)
            return 0;
        b += w;
        n -= (apr_size_t)w;
    }
    return 1;
}

/* Copy both ways until either side ends. The socket is non-blocking for
 * reads (so TLS is drained before polling) and waits up to 5 s to write. */
static int bridge(sc_tls_conn *c, apr_socket_t *sock, int fd)
{
    static char buf[BUF];
    apr_os_sock_t sfd;

    apr_os_sock_get(&sfd, sock);
    for (;;) {
        struct pollfd pf[2] = { { fd, POLLIN, 0 }, { sfd, POLLIN, 0 } };
        apr_size_t got;
        apr_status_t rv;
        ssize_t n;

        apr_socket_timeout_set(sock, 0);
        while ((rv = sc_tls_recv(c, buf, sizeof(buf), &got)) == APR_SUCCESS)
            if (!write_all(fd, buf, got))
                return 0;
        if (!APR_STATUS_IS_EAGAIN(rv))
            return APR_STATUS_IS_EOF(rv) ? 0 : 3;
        if (poll(pf, 2, -1) < 0)
            return 3;
        if (pf[0].revents) {
            if ((n = read(fd, buf, sizeof(buf))) <= 0)
                return 0;
            apr_socket_timeout_set(sock, apr_time_from_sec(5));
            if (sc_tls_write(c, buf, (apr_size_t)n) != APR_SUCCESS)
                return 3;
        }
    }
}

int main(int argc, char **argv)
{
    const char *connect_to = NULL, *route = NULL, *peer = NULL, *keyfiles[2] = { 0 };
    sc_tls_conf tc = { NULL, NULL, NULL, NULL };
    static const char *const fails[] = { "ok", "io", "timeout", "too-big", "auth",
                                         "not-tls" };
    int fd = -1, key = 0, nkeys = 0, none = 0, i;
    apr_pool_t *p;
    sc_keys keys;
    sc_tls *tls;
    sc_tls_conn *c;
    sc_tls_fail fail;
    apr_sockaddr_t *sa;
    apr_socket_t *sock;
    char *host = NULL, *scope = NULL;
    apr_port_t port = 0;
    const char *why = "";

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--none")) {
            none = 1;
            continue;
        }
        if (!v)
            usage("an option needs a value");
        i++;
        if (!strcmp(a, "--connect")) connect_to = v;
        else if (!strcmp(a, "--route")) route = v;
        else if (!strcmp(a, "--fd")) fd = atoi(v);
        else if (!strcmp(a, "--key") && nkeys < 2) keyfiles[nkeys++] = v;
        else if (!strcmp(a, "--key-index")) key = atoi(v);
        else if (!strcmp(a, "--cert")) tc.cert_file = v;
        else if (!strcmp(a, "--cert-key")) tc.key_file = v;
        else if (!strcmp(a, "--ca")) tc.ca_file = v;
        else if (!strcmp(a, "--peer")) peer = v;
        else usage(a);
    }
    if (!connect_to || !route || fd < 0 || (!nkeys && !none && !tc.cert_file))
        usage("--connect, --route, --fd and a key, --none or --cert are needed");
    signal(SIGPIPE, SIG_IGN);      /* a closed end is an error to report */
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&p, NULL);
    if (none)
        sc_keys_none(&keys);
    for (i = 0; i < nkeys; i++)
        if (sc_keys_add_file(&keys, i, keyfiles[i], p, &why) != APR_SUCCESS) {
            printf("fail key %s: %s\n", keyfiles[i], why);
            return 2;
        }
    tc.keys = tc.cert_file ? NULL : &keys;
    if (sc_tls_create(&tls, &tc, p, &why) != APR_SUCCESS) {
        printf("fail tls %s\n", why);
        return 2;
    }
    if (apr_parse_addr_port(&host, &scope, &port, connect_to, p) != APR_SUCCESS
        || !host || !port)
        usage("--connect wants HOST:PORT");
    if (apr_sockaddr_info_get(&sa, host, APR_UNSPEC, port, 0, p) != APR_SUCCESS
        || apr_socket_create(&sock, sa->family, SOCK_STREAM, APR_PROTO_TCP, p)
           != APR_SUCCESS
        || apr_socket_timeout_set(sock, apr_time_from_sec(5)) != APR_SUCCESS
        || apr_socket_connect(sock, sa) != APR_SUCCESS) {
        printf("fail io cannot connect to %s\n", connect_to);
        return 2;
    }
    apr_socket_opt_set(sock, APR_TCP_NODELAY, 1);
    if (sc_tls_client(&c, tls, sock, route, peer ? peer : route, key,
                      apr_time_now() + apr_time_from_sec(5), p, &fail, &why)
        != APR_SUCCESS) {
        printf("fail %s %s\n", fails[fail], why);
        return 2;
    }
    sc_tls_deadline(c, 0);
    printf("ok %s\n", sc_tls_key_id(c));
    fflush(stdout);
    return bridge(c, sock, fd);
}
