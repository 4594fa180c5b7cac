/* sc_gate.h - who may start a handshake with clusterd, and how many at once.
 *
 * Contract:
 *  - Before a peer has authenticated it costs a thread and a handshake's
 *    work, so connections in that state are counted per source address:
 *    at most SC_GATE_PER_STRANGER at once from an address that is no
 *    member's, at most SC_GATE_STRANGERS from all such addresses together,
 *    and at most SC_GATE_PER_MEMBER from each member's address. Members'
 *    quotas are their own: strangers never use them up, so a real member
 *    can always reconnect (unless the stranger shares its address, e.g.
 *    loopback).
 *  - Member addresses are told by slot (configured or learnt members); a
 *    name is resolved once, when told.
 *  - Pure bookkeeping, thread-safe, only APR: unit-tested alone.
 *  - Runs in clusterd: the acceptor thread enters, connection threads
 *    leave.
 */
#ifndef SC_GATE_H
#define SC_GATE_H

#include <apr_network_io.h>
#include <apr_pools.h>

#include "sc_limits.h"

#define SC_GATE_PER_STRANGER  2
#define SC_GATE_STRANGERS     16
#define SC_GATE_PER_MEMBER    16
#define SC_GATE_MEMBERS_MAX   SC_MAX_MEMBERS

typedef struct sc_gate sc_gate;

apr_status_t sc_gate_create(sc_gate **out, apr_pool_t *p);

/* Member slot `i` (< SC_GATE_MEMBERS_MAX) is at `host`. */
apr_status_t sc_gate_member(sc_gate *g, int i, const char *host);

/* Admit one more handshake from `from`: a ticket (>= 0) to hand back with
 * sc_gate_leave(), or -1 with *why saying which limit it hit. */
int sc_gate_enter(sc_gate *g, const apr_sockaddr_t *from, const char **why);
void sc_gate_leave(sc_gate *g, int ticket);

/* Handshakes under way from addresses that are no member's. */
int sc_gate_strangers(sc_gate *g);

#endif
