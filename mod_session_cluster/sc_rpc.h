/* sc_rpc.h - how a child tells clusterd that a session changed.
 *
 * Contract:
 *  - clusterd listens on a Unix socket (created before it drops privileges,
 *    owned by the child user). A request is: u32 length, u8 message type
 *    (SC_MSG_DELTA, SC_MSG_SESSION or SC_MSG_INVALIDATE), u8 send mode, then
 *    that message's wire payload, which clusterd forwards to peers as is.
 *  - async: the child sends and hangs up. ack / sync: it waits for clusterd's
 *    reply (u8 status, u16 peers asked, u16 peers that confirmed) at most
 *    `timeout`; a missing clusterd or a timeout is reported, never waited out.
 *  - Requests are capped at SC_WIRE_MAX_BODY before anything is allocated.
 */
#ifndef SC_RPC_H
#define SC_RPC_H

#include <apr_network_io.h>

#include "sc_wire.h"

typedef struct {
    int type;                   /* SC_MSG_DELTA / SESSION / INVALIDATE */
    int mode;                   /* sc_send_mode_e */
    const char *payload;
    apr_size_t len;
} sc_rpc_req;

typedef struct {
    int peers;                  /* up members the change was sent to */
    int confirmed;              /* of those, how many acknowledged in time */
} sc_rpc_reply;

/* Child side: one request, and for ack/sync its reply. */
apr_status_t sc_rpc_call(const char *path, const sc_rpc_req *req,
                         apr_interval_time_t timeout, apr_pool_t *p,
                         sc_rpc_reply *reply);

/* clusterd side. */
apr_status_t sc_rpc_listen(const char *path, apr_uid_t owner, apr_gid_t group,
                           apr_pool_t *p, apr_socket_t **sock);
apr_status_t sc_rpc_read(apr_socket_t *s, apr_pool_t *p, sc_rpc_req *req);
apr_status_t sc_rpc_answer(apr_socket_t *s, const sc_rpc_reply *reply);

#endif
