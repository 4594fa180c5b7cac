/* sc_wire.h - the peer wire protocol, whole: includes the codec's headers.
 *
 * Contract:
 *  - sc_frame.h: frames on a member connection inside TLS (length, header,
 *    HELLO, counters) and the message types; sc_msg.h: each type's payload
 *    codec; sc_heartbeat.h: multicast heartbeat datagrams outside TLS,
 *    sealed with sc_seal.h (AES-256-GCM). The formats are in those headers.
 *  - Nothing is defined here: a file that needs one part may include that
 *    header alone. sc_codec.h (validation, reader, writer) is the codec's
 *    own and is not included.
 *  - Only APR and OpenSSL libcrypto; no httpd headers.
 */
#ifndef SC_WIRE_H
#define SC_WIRE_H

#include "sc_frame.h"
#include "sc_msg.h"
#include "sc_seal.h"
#include "sc_heartbeat.h"

#endif
