#!/bin/sh
# Prints the session as mod_session hands it to CGI (HTTP_SESSION), unchanged.
printf 'Content-Type: text/plain\r\n'
printf 'Cache-Control: no-store\r\n'
printf '\r\n'
printf 'session=%s\n' "$HTTP_SESSION"
