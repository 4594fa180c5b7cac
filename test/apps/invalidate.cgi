#!/bin/sh
# Invalidates the session: sets every existing key to an empty value
# (X-Replace-Session: count=&other=), which mod_session treats as removal.
keys=$(printf '%s\n' "$HTTP_SESSION" | tr '&' '\n' | sed -n 's/^\([^=][^=]*\)=.*/\1=/p' \
       | grep -v '^expiry=$' | tr '\n' '&' | sed 's/&$//')
printf 'Content-Type: text/plain\r\n'
printf 'Cache-Control: no-store\r\n'
if [ -n "$keys" ]; then
    printf 'X-Replace-Session: %s\r\n' "$keys"
fi
printf '\r\n'
printf 'removed=%s\n' "$keys"
