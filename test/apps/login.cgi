#!/bin/sh
# Logs a user in: sets user=<query> in the session (its other keys stay) and
# asks mod_session_cluster for a new session id at this save (fixation
# protection), with the X-Session-Cluster-Rotate response header.
user=$(printf '%s' "$QUERY_STRING" | tr -cd 'A-Za-z0-9')
printf 'Content-Type: text/plain\r\n'
printf 'Cache-Control: no-store\r\n'
printf 'X-Replace-Session: user=%s\r\n' "$user"
printf 'X-Session-Cluster-Rotate: 1\r\n'
printf '\r\n'
printf 'user=%s\n' "$user"
