/* sc_tls.c - TLS 1.3 between members (see sc_tls.h).
 *
 * Why memory BIOs: OpenSSL never touches the socket. Each byte the peer
 * sends is received here first, so the handshake's deadline and byte
 * budget hold whatever the peer does (dribbling, oversized hellos), and the
 * same APR socket timeouts bound every later wait.
 */
#include <string.h>

#include <apr_strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sc_id.h"
#include "sc_sock.h"
#include "sc_tls.h"

#define SC_TLS_SUITE    "TLS_AES_256_GCM_SHA384"
#define SC_TLS_GROUPS   "X25519:P-256"
#define SC_PSK_PREFIX   "sc2 "
#define SC_ROUTE_BUF    (SC_ROUTE_LEN_MAX + 1)
/* "sc2 " id " " route, and a NUL */
#define SC_IDENTITY_MAX (sizeof(SC_PSK_PREFIX) + SC_KEY_ID_LEN + 1 + SC_ROUTE_LEN_MAX)
/* a TLS record carrying a handshake message starts with this byte */
#define SC_TLS_HANDSHAKE 0x16
/* plaintext per SSL_write, and raw bytes per socket read */
#define SC_TLS_CHUNK    (16 * 1024)

struct sc_tls {
    SSL_CTX *ctx;
    const sc_keys *keys;        /* NULL with certificates */
    apr_size_t budget;
};

struct sc_tls_conn {
    sc_tls *tls;
    SSL *ssl;
    BIO *rbio, *wbio;           /* socket -> OpenSSL, OpenSSL -> socket */
    apr_socket_t *sock;
    apr_pool_t *pool;
    apr_interval_time_t timeout;    /* the socket's own, restored */
    apr_time_t deadline;            /* 0: none */
    apr_time_t started;
    apr_size_t bytes_in;
    unsigned char first;            /* the first byte the peer sent */
    int established;
    int key;                        /* PSK slot used */
    char identity[SC_IDENTITY_MAX]; /* client: what it offers */
    char peer_route[SC_ROUTE_BUF];  /* server: from the PSK identity */
    const char *psk_why;            /* server: why no offered PSK was taken */
    const char *why;                /* the last failure, in words */
    /* plaintext of the last record read, not yet taken: a frame's length
     * prefix and its body come out of one SSL_read */
    unsigned char *plain;
    apr_size_t plain_at, plain_end;
};

static const unsigned char sc_aes256gcm_sha384[] = { 0x13, 0x02 };

/* ---- PSKs ------------------------------------------------------------------- */

static SSL_SESSION *psk_session(SSL *ssl, const unsigned char *key)
{
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, sc_aes256gcm_sha384);
    SSL_SESSION *s = SSL_SESSION_new();

    if (!s || !cipher || !SSL_SESSION_set1_master_key(s, key, SC_KEY_BYTES)
        || !SSL_SESSION_set_cipher(s, cipher)
        || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
        SSL_SESSION_free(s);
        return NULL;
    }
    return s;
}

/* Client: offer our identity under key c->key. */
static int psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id,
                   size_t *idlen, SSL_SESSION **sess)
{
    sc_tls_conn *c = SSL_get_app_data(ssl);
    SSL_SESSION *s = psk_session(ssl, c->tls->keys->psk[c->key]);

    *sess = NULL;
    *id = NULL;
    *idlen = 0;
    if (!s)
        return 0;
    if (md && md != SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s))) {
        SSL_SESSION_free(s);        /* a suite this PSK cannot serve */
        return 1;
    }
    *sess = s;
    *id = (const unsigned char *)c->identity;
    *idlen = strlen(c->identity);
    return 1;
}

/* Server: "sc2 <id> <route>" with a key id this node holds. Anything else
 * is no PSK, and without one the handshake cannot complete. */
static int psk_find(SSL *ssl, const unsigned char *identity, size_t len,
                    SSL_SESSION **sess)
{
    sc_tls_conn *c = SSL_get_app_data(ssl);
    const sc_keys *keys = c->tls->keys;
    const size_t pre = sizeof(SC_PSK_PREFIX) - 1;
    char route[SC_ROUTE_BUF];
    size_t rlen;
    int i;

    *sess = NULL;
    if (len <= pre + SC_KEY_ID_LEN + 1 || len >= SC_IDENTITY_MAX
        || memcmp(identity, SC_PSK_PREFIX, pre)
        || identity[pre + SC_KEY_ID_LEN] != ' ') {
        c->psk_why = "it offers no key of this cluster";
        return 1;
    }
    /* len < SC_IDENTITY_MAX, so rlen <= SC_ROUTE_LEN_MAX: the route fits */
    rlen = len - pre - SC_KEY_ID_LEN - 1;
    memcpy(route, identity + pre + SC_KEY_ID_LEN + 1, rlen);
    route[rlen] = '\0';
    if (strlen(route) != rlen || !sc_route_valid(route)) {
        c->psk_why = "its PSK identity names no valid route";
        return 1;
    }
    if ((i = sc_keys_find(keys, (const char *)identity + pre, SC_KEY_ID_LEN)) < 0) {
        c->psk_why = apr_psprintf(c->pool, "it offers key %.*s, this node holds "
                                  "%s (another ClusterSecretFile)", SC_KEY_ID_LEN,
                                  (const char *)identity + pre,
                                  sc_keys_ids(keys, c->pool));
        return 1;
    }
    if (!(*sess = psk_session(ssl, keys->psk[i])))
        return 0;
    apr_cpystrn(c->peer_route, route, sizeof(c->peer_route));
    c->key = i;
    return 1;
}

/* ---- the context ------------------------------------------------------------- */

static const char *ssl_error(apr_pool_t *p, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return reason ? apr_psprintf(p, "%s: %s", what, reason) : what;
}

static apr_status_t ctx_free(void *data)
{
    SSL_CTX_free(data);
    return APR_SUCCESS;
}

static int load_certs(SSL_CTX *ctx, const sc_tls_conf *conf, apr_pool_t *p,
                      const char **why)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->cert_file) != 1) {
        *why = ssl_error(p, apr_psprintf(p, "cannot load ClusterCertificateFile "
                                         "%s", conf->cert_file));
        return 0;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->key_file, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_check_private_key(ctx) != 1) {
        *why = ssl_error(p, apr_psprintf(p, "cannot load ClusterCertificateKeyFile "
                                         "%s for that certificate", conf->key_file));
        return 0;
    }
    if (SSL_CTX_load_verify_locations(ctx, conf->ca_file, NULL) != 1) {
        *why = ssl_error(p, apr_psprintf(p, "cannot load ClusterCACertificateFile "
                                         "%s", conf->ca_file));
        return 0;
    }
    return 1;
}

apr_status_t sc_tls_create(sc_tls **out, const sc_tls_conf *conf,
                           apr_pool_t *p, const char **why)
{
    sc_tls *t = apr_pcalloc(p, sizeof(*t));
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());

    *why = NULL;
    if (!ctx) {
        *why = ssl_error(p, "cannot create a TLS context");
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, ctx, ctx_free, apr_pool_cleanup_null);
    t->ctx = ctx;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1
        || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1
        || SSL_CTX_set_ciphersuites(ctx, SC_TLS_SUITE) != 1
        || SSL_CTX_set1_groups_list(ctx, SC_TLS_GROUPS) != 1
        || SSL_CTX_set_num_tickets(ctx, 0) != 1) {
        *why = ssl_error(p, "this OpenSSL cannot do TLS 1.3 with "
                         SC_TLS_SUITE " and " SC_TLS_GROUPS);
        return APR_EGENERAL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION
                             | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (conf->cert_file) {
        if (!load_certs(ctx, conf, p, why))
            return APR_EGENERAL;
        t->budget = SC_TLS_BUDGET_CERTS;
    }
    else {
        if (!conf->keys || conf->keys->n < 1) {
            *why = "no cluster key and no certificate";
            return APR_EINVAL;
        }
        t->keys = conf->keys;
        t->budget = SC_TLS_BUDGET_PSK;
        SSL_CTX_set_psk_find_session_callback(ctx, psk_find);
    }
    *out = t;
    return APR_SUCCESS;
}

int sc_tls_keys(const sc_tls *t) { return t->keys ? t->keys->n : 1; }

int sc_tls_certs(const sc_tls *t) { return t->keys == NULL; }

/* ---- moving bytes -------------------------------------------------------------- */

/* Send what OpenSSL produced (records, alerts). */
static apr_status_t flush_out(sc_tls_conn *c)
{
    char *data = NULL;
    long n = BIO_get_mem_data(c->wbio, &data);
    apr_status_t rv;

    if (n <= 0)
        return APR_SUCCESS;
    rv = sc_sock_write(c->sock, data, (apr_size_t)n);
    (void)BIO_reset(c->wbio);
    return rv;
}

/* Receive what the socket has (waiting at most until the deadline, or the
 * socket's timeout) and hand it to OpenSSL. Before the handshake completed
 * never more than the budget, plus one byte to notice it was exceeded. */
static apr_status_t fill_in(sc_tls_conn *c)
{
    char buf[SC_TLS_CHUNK];
    apr_size_t n = sizeof(buf);
    apr_status_t rv;

    if (!c->established) {
        if (c->bytes_in > c->tls->budget)
            return APR_ENOSPC;
        if (n > c->tls->budget + 1 - c->bytes_in)
            n = c->tls->budget + 1 - c->bytes_in;
    }
    if (c->deadline) {
        apr_interval_time_t left = c->deadline - apr_time_now();
        if (left <= 0)
            return APR_TIMEUP;
        apr_socket_timeout_set(c->sock, left);
    }
    if ((rv = sc_sock_recv(c->sock, buf, &n)) != APR_SUCCESS)
        return rv;
    if (BIO_write(c->rbio, buf, (int)n) != (int)n)
        return APR_ENOMEM;
    if (!c->bytes_in)
        c->first = (unsigned char)buf[0];
    c->bytes_in += n;
    if (!c->established && c->bytes_in > c->tls->budget)
        rv = APR_ENOSPC;
    return rv;
}

static apr_status_t conn_free(void *data)
{
    sc_tls_conn *c = data;
    SSL_free(c->ssl);           /* frees both BIOs too */
    return APR_SUCCESS;
}

static apr_status_t new_conn(sc_tls_conn **out, sc_tls *t, apr_socket_t *sock,
                             apr_time_t deadline, apr_pool_t *p)
{
    sc_tls_conn *c = apr_pcalloc(p, sizeof(*c));

    c->tls = t;
    c->sock = sock;
    c->pool = p;
    c->deadline = deadline;
    c->started = apr_time_now();
    apr_socket_timeout_get(sock, &c->timeout);
    c->plain = apr_palloc(p, SC_TLS_CHUNK);
    if (!(c->ssl = SSL_new(t->ctx)))
        return APR_ENOMEM;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        return APR_ENOMEM;
    }
    BIO_set_mem_eof_return(c->rbio, -1);    /* empty: "want read", not EOF */
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_app_data(c->ssl, c);
    apr_pool_cleanup_register(p, c, conn_free, apr_pool_cleanup_null);
    *out = c;
    return APR_SUCCESS;
}

static apr_status_t fail_with(sc_tls_fail *fail, const char **why, sc_tls_fail f,
                              const char *text, apr_status_t rv)
{
    *fail = f;
    *why = text;
    return rv;
}

/* Drive the handshake to its end, the deadline, the budget or an error. */
static apr_status_t handshake(sc_tls_conn *c, sc_tls_fail *fail, const char **why)
{
    apr_pool_t *p = c->pool;

    for (;;) {
        int r, e;
        apr_status_t rv, wrv;

        ERR_clear_error();
        r = SSL_do_handshake(c->ssl);
        e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        wrv = flush_out(c);         /* alerts included: the peer learns why */
        if (r == 1 && wrv == APR_SUCCESS)
            break;
        if (wrv != APR_SUCCESS)
            return fail_with(fail, why, SC_TLS_IO, "connection lost during the TLS "
                             "handshake", wrv);
        if (e != SSL_ERROR_WANT_READ) {
            /* our own words when we know what the peer did wrong */
            const char *what = c->psk_why ? c->psk_why
                               : ssl_error(p, "TLS handshake failed");
            ERR_clear_error();
            if (SSL_is_server(c->ssl) && c->bytes_in && c->first != SC_TLS_HANDSHAKE)
                return fail_with(fail, why, SC_TLS_NOT_TLS, apr_psprintf(p, "its "
                                 "first byte is 0x%02x, not a TLS handshake (a "
                                 "member running a version before TLS?)", c->first),
                                 APR_EACCES);
            return fail_with(fail, why, SC_TLS_AUTH, what, APR_EACCES);
        }
        rv = fill_in(c);
        if (APR_STATUS_IS_TIMEUP(rv))
            return fail_with(fail, why, SC_TLS_TIMEOUT, apr_psprintf(p, "no TLS "
                             "handshake within %" APR_TIME_T_FMT " ms",
                             apr_time_as_msec(c->deadline - c->started)), rv);
        if (rv == APR_ENOSPC)
            return fail_with(fail, why, SC_TLS_TOO_BIG, apr_psprintf(p, "more than "
                             "%" APR_SIZE_T_FMT " bytes before authenticating",
                             c->tls->budget), rv);
        if (rv != APR_SUCCESS)
            return fail_with(fail, why, SC_TLS_IO, "connection closed during the "
                             "TLS handshake", rv);
    }
    c->established = 1;
    /* PSK mode: the handshake must have used a key of ours (never a server
     * certificate nobody checked); certificates: verified by OpenSSL */
    if (c->tls->keys && !SSL_session_reused(c->ssl))
        return fail_with(fail, why, SC_TLS_AUTH, "the peer did not use a "
                         "cluster key", APR_EACCES);
    if (!c->tls->keys && SSL_get_verify_result(c->ssl) != X509_V_OK)
        return fail_with(fail, why, SC_TLS_AUTH, "certificate not verified",
                         APR_EACCES);
    *fail = SC_TLS_OK;
    return APR_SUCCESS;
}

apr_status_t sc_tls_client(sc_tls_conn **out, sc_tls *t, apr_socket_t *sock,
                           const char *self_route, const char *peer_route,
                           int key, apr_time_t deadline, apr_pool_t *p,
                           sc_tls_fail *fail, const char **why)
{
    sc_tls_conn *c;
    apr_status_t rv;

    if ((rv = new_conn(&c, t, sock, deadline, p)) != APR_SUCCESS)
        return fail_with(fail, why, SC_TLS_IO, "out of memory", rv);
    if (t->keys) {
        if (key < 0 || key >= t->keys->n || !sc_route_valid(self_route))
            return fail_with(fail, why, SC_TLS_AUTH, "no such key", APR_EINVAL);
        c->key = key;
        apr_snprintf(c->identity, sizeof(c->identity), SC_PSK_PREFIX "%s %s",
                     t->keys->id[key], self_route);
        SSL_set_psk_use_session_callback(c->ssl, psk_use);
        /* nobody's certificate is trusted: only a PSK handshake completes */
        SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
    }
    else {
        SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_WILDCARDS);
        if (SSL_set1_host(c->ssl, peer_route) != 1)
            return fail_with(fail, why, SC_TLS_AUTH, "cannot expect that route "
                             "in a certificate", APR_EINVAL);
    }
    SSL_set_connect_state(c->ssl);
    if ((rv = handshake(c, fail, why)) != APR_SUCCESS)
        return rv;
    *out = c;
    return APR_SUCCESS;
}

apr_status_t sc_tls_server(sc_tls_conn **out, sc_tls *t, apr_socket_t *sock,
                           apr_time_t deadline, apr_pool_t *p,
                           sc_tls_fail *fail, const char **why)
{
    sc_tls_conn *c;
    apr_status_t rv;

    if ((rv = new_conn(&c, t, sock, deadline, p)) != APR_SUCCESS)
        return fail_with(fail, why, SC_TLS_IO, "out of memory", rv);
    SSL_set_verify(c->ssl, t->keys ? SSL_VERIFY_NONE
                   : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_set_accept_state(c->ssl);
    if ((rv = handshake(c, fail, why)) != APR_SUCCESS)
        return rv;
    *out = c;
    return APR_SUCCESS;
}

int sc_tls_peer_is(const sc_tls_conn *c, const char *route)
{
    X509 *cert;
    int ok;

    if (c->tls->keys)
        return !SSL_is_server(c->ssl) || !strcmp(c->peer_route, route);
    if (!(cert = SSL_get1_peer_certificate(c->ssl)))
        return 0;
    ok = X509_check_host(cert, route, strlen(route), X509_CHECK_FLAG_NO_WILDCARDS,
                         NULL) == 1;
    X509_free(cert);
    return ok;
}

const char *sc_tls_why(const sc_tls_conn *c)
{
    return c->why ? c->why : "connection closed or timed out";
}

const char *sc_tls_key_id(const sc_tls_conn *c)
{
    return c->tls->keys ? c->tls->keys->id[c->key] : "cert";
}

void sc_tls_deadline(sc_tls_conn *c, apr_time_t deadline)
{
    c->deadline = deadline;
    if (!deadline)
        sc_tls_timeout(c, c->timeout);
}

apr_status_t sc_tls_timeout(sc_tls_conn *c, apr_interval_time_t timeout)
{
    c->timeout = timeout;
    if (c->deadline)
        return APR_SUCCESS;         /* the handshake's own, until it ends */
    /* a wait is then one blocking read(): no poll() before each (an
     * unbounded one, < 0, also clears kernel timeouts set before) */
    return timeout ? sc_sock_blocking(c->sock, timeout)
                   : apr_socket_timeout_set(c->sock, 0);
}

apr_size_t sc_tls_bytes_in(const sc_tls_conn *c) { return c->bytes_in; }

/* A read failed in TLS. With TLS 1.3 a client's handshake is over before
 * the server has checked the client's certificate: a server that refuses
 * it says so with an alert that arrives at the client's first read. An
 * alert is the peer refusing us (APR_EACCES); the rest is a broken link. */
static apr_status_t read_failed(sc_tls_conn *c)
{
    unsigned long e = ERR_peek_last_error();
    int alert = e && ERR_GET_LIB(e) == ERR_LIB_SSL
                && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET;

    c->why = ssl_error(c->pool, alert ? "the peer refused us" : "TLS failed");
    return alert ? APR_EACCES : APR_EGENERAL;
}

/* What is left of the last record: up to len bytes of it. */
static apr_size_t take_plain(sc_tls_conn *c, unsigned char *buf, apr_size_t len)
{
    apr_size_t n = c->plain_end - c->plain_at;
    if (n > len)
        n = len;
    memcpy(buf, c->plain + c->plain_at, n);
    c->plain_at += n;
    return n;
}

apr_status_t sc_tls_recv(sc_tls_conn *c, void *buf, apr_size_t len,
                         apr_size_t *got)
{
    /* small reads go through c->plain, so the next one needs no SSL_read */
    int direct = len >= SC_TLS_CHUNK;

    *got = 0;
    if (!len)
        return APR_SUCCESS;
    if (c->plain_at < c->plain_end) {
        *got = take_plain(c, buf, len);
        return APR_SUCCESS;
    }
    for (;;) {
        size_t n = 0;
        int r, e;
        apr_status_t rv;

        /* nothing buffered anywhere: an SSL_read could only want more */
        if (c->established && !SSL_has_pending(c->ssl)
            && !BIO_ctrl_pending(c->rbio) && (rv = fill_in(c)) != APR_SUCCESS)
            return rv;
        ERR_clear_error();
        r = SSL_read_ex(c->ssl, direct ? buf : c->plain,
                        direct ? len : SC_TLS_CHUNK, &n);
        if (r == 1) {
            if (direct)
                *got = n;
            else {
                c->plain_at = 0;
                c->plain_end = n;
                *got = take_plain(c, buf, len);
            }
            return BIO_ctrl_pending(c->wbio) ? flush_out(c) : APR_SUCCESS;
        }
        e = SSL_get_error(c->ssl, r);
        if ((rv = flush_out(c)) != APR_SUCCESS)
            return rv;
        if (e == SSL_ERROR_ZERO_RETURN)
            return APR_EOF;
        if (e != SSL_ERROR_WANT_READ)
            return read_failed(c);
        if ((rv = fill_in(c)) != APR_SUCCESS)
            return rv;
    }
}

apr_status_t sc_tls_read(sc_tls_conn *c, void *buf, apr_size_t len)
{
    unsigned char *at = buf;

    while (len) {
        apr_size_t got;
        apr_status_t rv = sc_tls_recv(c, at, len, &got);
        if (rv != APR_SUCCESS)
            return rv;
        at += got;
        len -= got;
    }
    return APR_SUCCESS;
}

/* Into OpenSSL's out buffer, whole (a memory BIO takes everything). */
static apr_status_t seal_out(sc_tls_conn *c, const unsigned char *at,
                             apr_size_t len)
{
    while (len) {
        size_t n = len > SC_TLS_CHUNK * 4 ? SC_TLS_CHUNK * 4 : len, put = 0;

        ERR_clear_error();
        if (SSL_write_ex(c->ssl, at, n, &put) != 1 || put != n) {
            ERR_clear_error();
            return APR_EGENERAL;
        }
        at += n;
        len -= n;
    }
    return APR_SUCCESS;
}

apr_status_t sc_tls_write_nowait(sc_tls_conn *c, const void *buf,
                                 apr_size_t len, int *drained)
{
    char *data = NULL, sink[4096];
    long pending;
    apr_size_t n;
    apr_status_t rv;

    *drained = 0;
    if ((rv = seal_out(c, buf, len)) != APR_SUCCESS)
        return rv;
    if ((pending = BIO_get_mem_data(c->wbio, &data)) <= 0) {
        *drained = 1;
        return APR_SUCCESS;
    }
    n = (apr_size_t)pending;
    if ((rv = sc_sock_send_nowait(c->sock, data, &n)) != APR_SUCCESS)
        return rv;
    if (n == (apr_size_t)pending) {
        (void)BIO_reset(c->wbio);
        *drained = 1;
        return APR_SUCCESS;
    }
    /* the socket took part of it: drop that part, keep the rest in order */
    while (n) {
        int k = BIO_read(c->wbio, sink, n > sizeof(sink) ? (int)sizeof(sink)
                                                         : (int)n);
        if (k <= 0)
            return APR_EGENERAL;
        n -= (apr_size_t)k;
    }
    return APR_SUCCESS;
}

apr_status_t sc_tls_flush(sc_tls_conn *c) { return flush_out(c); }

int sc_tls_buffered(sc_tls_conn *c)
{
    return c->plain_at < c->plain_end || SSL_has_pending(c->ssl)
           || BIO_ctrl_pending(c->rbio) > 0;
}

apr_status_t sc_tls_write(sc_tls_conn *c, const void *buf, apr_size_t len)
{
    const unsigned char *at = buf;
    apr_status_t rv = APR_SUCCESS;

    /* a chunk at a time: a big frame is never all in memory twice */
    while (len && rv == APR_SUCCESS) {
        apr_size_t n = len > SC_TLS_CHUNK * 4 ? SC_TLS_CHUNK * 4 : len;
        if ((rv = seal_out(c, at, n)) == APR_SUCCESS)
            rv = flush_out(c);
        at += n;
        len -= n;
    }
    return rv;
}
