/* sc_transfer.c - state transfer over a member connection, in clusterd
 * (see sc_transfer.h). */
#include <string.h>

#include "sc_apply.h"
#include "sc_bytes.h"
#include "sc_transfer.h"

/* records per STATE_CHUNK frame, by size: one session larger than this
 * travels alone */
#define SC_CHUNK_BYTES (256 * 1024)

typedef struct {
    sc_node *node;
    sc_peer *c;
    apr_pool_t *p;
    char *buf;
    apr_size_t used;
    apr_uint32_t count;
    apr_uint32_t sent;
    apr_status_t rv;
} sc_chunker;

static apr_status_t flush_chunk(sc_chunker *ck)
{
    apr_status_t rv;
    if (!ck->count)
        return APR_SUCCESS;
    put_u32((unsigned char *)ck->buf, ck->count);
    rv = sc_peer_send(ck->c, SC_MSG_STATE_CHUNK, ck->buf, ck->used, ck->p);
    ck->sent += ck->count;
    ck->count = 0;
    ck->used = 4;
    return rv;
}

static int add_to_chunk(void *baton, const sc_session *s)
{
    sc_chunker *ck = baton;
    const char *rec;
    apr_size_t len;

    if ((ck->rv = sc_apply_state_record(ck->node, s, ck->p, &rec, &len))
        != APR_SUCCESS)
        return 1;
    if (ck->used + 4 + len > SC_CHUNK_BYTES + 4
        && (ck->rv = flush_chunk(ck)) != APR_SUCCESS)
        return 1;
    if (ck->used + 4 + len > SC_CHUNK_BYTES + 4)     /* one large session */
        ck->buf = apr_palloc(ck->p, 8 + len);
    put_u32((unsigned char *)ck->buf + ck->used, (apr_uint32_t)len);
    memcpy(ck->buf + ck->used + 4, rec, len);
    ck->used += 4 + len;
    ck->count++;
    return 0;
}

apr_status_t sc_transfer_send(sc_node *node, sc_peer *c, apr_pool_t *p,
                              apr_uint32_t *sent)
{
    sc_chunker ck = { node, c, p, apr_palloc(p, SC_CHUNK_BYTES + 8), 4, 0, 0,
                      APR_SUCCESS };
    char *done;
    apr_size_t len;
    apr_status_t rv;

    rv = sc_store_foreach_all(node->store, apr_time_now(), p, add_to_chunk, &ck);
    if (rv == APR_SUCCESS)
        rv = ck.rv;
    if (rv == APR_SUCCESS)
        rv = flush_chunk(&ck);
    if (rv == APR_SUCCESS
        && (rv = sc_msg_u64_encode(p, ck.sent, &done, &len)) == APR_SUCCESS)
        rv = sc_peer_send(c, SC_MSG_STATE_DONE, done, len, p);
    *sent = ck.sent;
    return rv;
}

apr_status_t sc_transfer_receive(sc_node *node, sc_peer *c, apr_pool_t *p,
                                 apr_uint32_t *received, const char **why)
{
    apr_pool_t *scratch;
    apr_status_t rv;

    *received = 0;
    if ((rv = sc_peer_send(c, SC_MSG_STATE_REQ, "", 0, p)) != APR_SUCCESS) {
        *why = "cannot ask for state";
        return rv;
    }
    apr_pool_create(&scratch, p);
    apr_pool_tag(scratch, "sc_transfer_receive");
    for (;;) {
        const char *payload;
        apr_size_t len;
        apr_uint64_t total;
        int type;

        apr_pool_clear(scratch);
        if ((rv = sc_peer_recv(c, scratch, &type, &payload, &len, why)) != APR_SUCCESS)
            break;
        if (type == SC_MSG_STATE_DONE) {
            if (sc_msg_u64_decode(payload, len, &total) != APR_SUCCESS
                || total != *received) {
                *why = "state transfer ended with a wrong count";
                rv = APR_EGENERAL;
            }
            break;
        }
        if (type != SC_MSG_STATE_CHUNK
            || sc_apply_state_chunk(node, payload, len, c->wire.peer, scratch,
                                    received) != APR_SUCCESS) {
            *why = "malformed state chunk";
            rv = APR_EGENERAL;
            break;
        }
    }
    apr_pool_destroy(scratch);
    return rv;
}
