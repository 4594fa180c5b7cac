/* sc_rpc.c - child to clusterd requests over a Unix socket (see sc_rpc.h). */
#include <errno.h>
#include <unistd.h>
#include <sys/stat.h>

#include <apr_strings.h>

#include "sc_bytes.h"
#include "sc_config.h"
#include "sc_id.h"
#include "sc_sock.h"
#include "sc_rpc.h"

static apr_status_t unix_addr(const char *path, apr_pool_t *p, apr_sockaddr_t **sa)
{
    return apr_sockaddr_info_get(sa, path, APR_UNIX, 0, 0, p);
}

apr_status_t sc_rpc_call(const char *path, const sc_rpc_req *req,
                         apr_interval_time_t timeout, apr_pool_t *p,
                         sc_rpc_reply *reply)
{
    unsigned char hdr[SC_RPC_HEADER + SC_ROUTE_LEN_MAX], ans[5];
    const char *target = req->target ? req->target : "";
    apr_size_t tlen = strlen(target);
    apr_sockaddr_t *sa;
    apr_socket_t *s;
    apr_status_t rv;

    if (tlen > SC_ROUTE_LEN_MAX
        || req->len + SC_RPC_HEADER - 4 + tlen > SC_WIRE_MAX_BODY)
        return APR_EINVAL;
    if ((rv = unix_addr(path, p, &sa)) != APR_SUCCESS
        || (rv = apr_socket_create(&s, APR_UNIX, SOCK_STREAM, 0, p)) != APR_SUCCESS)
        return rv;
    put_u32(hdr, (apr_uint32_t)(req->len + SC_RPC_HEADER - 4 + tlen));
    hdr[4] = (unsigned char)req->type;
    hdr[5] = (unsigned char)req->mode;
    hdr[6] = (unsigned char)req->flags;
    hdr[7] = (unsigned char)tlen;
    memcpy(hdr + SC_RPC_HEADER, target, tlen);
    if ((rv = apr_socket_timeout_set(s, timeout)) == APR_SUCCESS
        && (rv = apr_socket_connect(s, sa)) == APR_SUCCESS
        && (rv = sc_sock_write(s, (const char *)hdr, SC_RPC_HEADER + tlen))
           == APR_SUCCESS
        && (rv = sc_sock_write(s, req->payload, req->len)) == APR_SUCCESS
        && req->mode != SC_SEND_ASYNC
        && (rv = sc_sock_read(s, ans, sizeof(ans))) == APR_SUCCESS) {
        rv = ans[0] ? APR_EGENERAL : APR_SUCCESS;
        reply->peers = (ans[1] << 8) | ans[2];
        reply->confirmed = (ans[3] << 8) | ans[4];
    }
    apr_socket_close(s);
    return rv;
}

apr_status_t sc_rpc_listen(const char *path, apr_uid_t owner, apr_gid_t group,
                           apr_pool_t *p, apr_socket_t **sock)
{
    apr_sockaddr_t *sa;
    apr_status_t rv;

    unlink(path);           /* left by a clusterd that died */
    if ((rv = unix_addr(path, p, &sa)) != APR_SUCCESS
        || (rv = apr_socket_create(sock, APR_UNIX, SOCK_STREAM, 0, p)) != APR_SUCCESS
        || (rv = apr_socket_bind(*sock, sa)) != APR_SUCCESS
        || (rv = apr_socket_listen(*sock, SOMAXCONN)) != APR_SUCCESS)
        return rv;
    if (chown(path, owner, group) != 0 || chmod(path, 0600) != 0)
        return APR_FROM_OS_ERROR(errno);
    return APR_SUCCESS;
}

apr_status_t sc_rpc_read(apr_socket_t *s, apr_pool_t *p, sc_rpc_req *req)
{
    unsigned char hdr[SC_RPC_HEADER];
    apr_uint32_t len;
    char *body, *target;
    apr_size_t tlen;
    apr_status_t rv;

    if ((rv = sc_sock_read(s, hdr, sizeof(hdr))) != APR_SUCCESS)
        return rv;
    len = get_u32(hdr);
    tlen = hdr[7];
    if (len < SC_RPC_HEADER - 4 + tlen || len > SC_WIRE_MAX_BODY
        || tlen > SC_ROUTE_LEN_MAX)
        return APR_EINVAL;
    req->type = hdr[4];
    req->mode = hdr[5];
    req->flags = hdr[6];
    target = apr_pcalloc(p, tlen + 1);
    if ((rv = sc_sock_read(s, (unsigned char *)target, tlen)) != APR_SUCCESS)
        return rv;
    if (tlen && !sc_route_valid(target))
        return APR_EINVAL;
    req->target = target;
    req->len = len - (SC_RPC_HEADER - 4) - tlen;
    body = apr_palloc(p, req->len + 1);
    if ((rv = sc_sock_read(s, (unsigned char *)body, req->len)) != APR_SUCCESS)
        return rv;
    req->payload = body;
    return APR_SUCCESS;
}

apr_status_t sc_rpc_answer(apr_socket_t *s, const sc_rpc_reply *reply)
{
    unsigned char ans[5];
    ans[0] = reply->confirmed < reply->peers;
    ans[1] = (unsigned char)(reply->peers >> 8);
    ans[2] = (unsigned char)reply->peers;
    ans[3] = (unsigned char)(reply->confirmed >> 8);
    ans[4] = (unsigned char)reply->confirmed;
    return sc_sock_write(s, (const char *)ans, sizeof(ans));
}
