/* sc_status.h - the "cluster-manager" handler.
 *
 * Contract (pinned in DESIGN.md section 6):
 *  - ?auto  plain "Key: value" lines, one "Member: <route> <host:port> up|down"
 *           line per member (self included);
 *  - ?json  the same facts as one JSON object (Members as a list);
 *  - ?ready 200 when this node can serve sessions, else 503;
 *  - no query: an HTML page for people (members, session distribution, store
 *    usage, the current request's session).
 *  - Runs in httpd children: the cluster-manager handler.
 */
#ifndef SC_STATUS_H
#define SC_STATUS_H

#include <httpd.h>

int sc_status_handler(request_rec *r);

#endif
