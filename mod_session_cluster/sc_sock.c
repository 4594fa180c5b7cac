/* sc_sock.c - whole reads and writes on APR sockets (see sc_sock.h). */
#include <sys/socket.h>
#include <sys/time.h>

#include <apr_portable.h>

#include "sc_sock.h"

/* A blocking socket whose kernel timeout ran out says EAGAIN (a
 * non-blocking one, APR timeout 0, means it: nothing there yet). */
static apr_status_t timeup(apr_socket_t *sock, apr_status_t rv)
{
    apr_interval_time_t t = 0;
    apr_socket_timeout_get(sock, &t);
    return APR_STATUS_IS_EAGAIN(rv) && t < 0 ? APR_TIMEUP : rv;
}

apr_status_t sc_sock_blocking(apr_socket_t *sock, apr_interval_time_t timeout)
{
    struct timeval tv;
    apr_os_sock_t fd;
    apr_status_t rv;

    if (timeout < 0)
        timeout = 0;
    tv.tv_sec = (time_t)apr_time_sec(timeout);
    tv.tv_usec = (suseconds_t)apr_time_usec(timeout);
    if ((rv = apr_os_sock_get(&fd, sock)) != APR_SUCCESS)
        return rv;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0
        || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        return APR_FROM_OS_ERROR(errno);
    return apr_socket_timeout_set(sock, -1);
}

apr_status_t sc_sock_recv(apr_socket_t *sock, char *buf, apr_size_t *len)
{
    apr_status_t rv = apr_socket_recv(sock, buf, len);
    if (*len > 0)
        return APR_SUCCESS;
    return rv == APR_SUCCESS ? APR_EOF : timeup(sock, rv);
}

apr_status_t sc_sock_read(apr_socket_t *sock, unsigned char *buf, apr_size_t len)
{
    while (len) {
        apr_size_t n = len;
        apr_status_t rv = sc_sock_recv(sock, (char *)buf, &n);
        if (rv != APR_SUCCESS)
            return rv;
        buf += n;
        len -= n;
    }
    return APR_SUCCESS;
}

apr_status_t sc_sock_write(apr_socket_t *sock, const char *buf, apr_size_t len)
{
    while (len) {
        apr_size_t n = len;
        apr_status_t rv = apr_socket_send(sock, buf, &n);
        if (rv != APR_SUCCESS)
            return timeup(sock, rv);
        buf += n;
        len -= n;
    }
    return APR_SUCCESS;
}

apr_status_t sc_sock_send_nowait(apr_socket_t *sock, const char *buf,
                                 apr_size_t *len)
{
    apr_os_sock_t fd;
    ssize_t n;
    apr_status_t rv;

    if ((rv = apr_os_sock_get(&fd, sock)) != APR_SUCCESS)
        return rv;
    do
        n = send(fd, buf, *len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        *len = 0;
        return errno == EAGAIN || errno == EWOULDBLOCK ? APR_SUCCESS
                                                       : APR_FROM_OS_ERROR(errno);
    }
    *len = (apr_size_t)n;
    return APR_SUCCESS;
}
