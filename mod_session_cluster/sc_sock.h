/* sc_sock.h - move exactly n bytes over a blocking APR socket; each wait is
 * bounded by the socket's timeout. A peer that closes early is APR_EOF.
 * Runs in clusterd (and the sc_tlspeer test tool). */
#ifndef SC_SOCK_H
#define SC_SOCK_H

#include <apr_network_io.h>

apr_status_t sc_sock_read(apr_socket_t *sock, unsigned char *buf, apr_size_t len);
apr_status_t sc_sock_write(apr_socket_t *sock, const char *buf, apr_size_t len);

#endif
