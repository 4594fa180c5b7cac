/* sc_sock.h - move exactly n bytes over a blocking APR socket; each wait is
 * bounded by the socket's timeout. A peer that closes early is APR_EOF.
 * Runs in clusterd (and the sc_tlspeer test tool). */
#ifndef SC_SOCK_H
#define SC_SOCK_H

#include <apr_network_io.h>

apr_status_t sc_sock_read(apr_socket_t *sock, unsigned char *buf, apr_size_t len);
apr_status_t sc_sock_write(apr_socket_t *sock, const char *buf, apr_size_t len);

/* Make the socket blocking, each read and write bounded by `timeout` in the
 * kernel (SO_RCVTIMEO, SO_SNDTIMEO; 0: unbounded): one read() per wait
 * instead of APR's poll() then read(). A wait that runs out is APR_TIMEUP
 * from sc_sock_read/sc_sock_write and sc_sock_recv. apr_socket_timeout_set()
 * undoes it (APR's own non-blocking waits). */
apr_status_t sc_sock_blocking(apr_socket_t *sock, apr_interval_time_t timeout);

/* At most *len bytes (at least 1 unless it fails); APR_EOF when the peer
 * closed, APR_TIMEUP when the wait ran out in either mode. */
apr_status_t sc_sock_recv(apr_socket_t *sock, char *buf, apr_size_t *len);

/* Send what the socket takes now, never waiting (*len: how much it took,
 * maybe 0); a socket that failed says so. */
apr_status_t sc_sock_send_nowait(apr_socket_t *sock, const char *buf,
                                 apr_size_t *len);

#endif
