/* sc_rpc.h - how a child tells clusterd that a session changed.
 *
 * Contract:
 *  - clusterd listens on a Unix socket (created before it drops privileges,
 *    owned by the child user). A request is: u32 length (of all that
 *    follows), u8 message type (SC_MSG_DELTA, SC_MSG_SESSION,
 *    SC_MSG_INVALIDATE, or SC_MSG_FETCH), u8 send mode, u8 flags, u8 target
 *    length, the target route (empty: every up member), then that message's
 *    wire payload, which clusterd forwards to peers as is.
 *  - SC_RPC_F_LOCATION (with a SESSION): the session's placement changed;
 *    clusterd also tells every other up member where it lives (LOCATION).
 *  - FETCH (payload: the id): clusterd fetches the session from the members
 *    into this node's store; the reply confirms 1 when it is here now.
 *  - async: the child sends and hangs up. ack / sync: it waits for clusterd's
 *    reply (u8 status, u16 peers asked, u16 peers that confirmed) at most
 *    `timeout`; a missing clusterd or a timeout is reported, never waited out.
 *  - Requests are capped at SC_WIRE_MAX_BODY before anything is allocated.
 */
#ifndef SC_RPC_H
#define SC_RPC_H

#include <apr_network_io.h>

#include "sc_wire.h"

#define SC_RPC_HEADER      8       /* u32 length, type, mode, flags, tlen */
#define SC_RPC_F_LOCATION  0x01

typedef struct {
    int type;                   /* SC_MSG_DELTA / SESSION / INVALIDATE / FETCH */
    int mode;                   /* sc_send_mode_e */
    int flags;                  /* SC_RPC_F_* */
    const char *target;         /* route to send to; "" or NULL: all up */
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
