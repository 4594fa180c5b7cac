/* sc_sock.c - whole reads and writes on APR sockets (see sc_sock.h). */
#include "sc_sock.h"

apr_status_t sc_sock_read(apr_socket_t *sock, unsigned char *buf, apr_size_t len)
{
    while (len) {
        apr_size_t n = len;
        apr_status_t rv = apr_socket_recv(sock, (char *)buf, &n);
        if (n == 0 && rv == APR_SUCCESS)
            rv = APR_EOF;
        if (rv != APR_SUCCESS && !(APR_STATUS_IS_EOF(rv) && n == len))
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
            return rv;
        buf += n;
        len -= n;
    }
    return APR_SUCCESS;
}
