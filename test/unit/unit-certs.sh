#!/bin/sh
# unit-certs.sh DIR - a test CA and certificates for test_tls's certificate
# mode, made afresh in DIR (emptied first) by `make unit`: node1, node2 and
# node3 signed by the CA, each naming its route in CN and SAN DNS; node4 in
# its CN only; other-node1 naming node1, signed by another CA.
set -eu
d=${1:?usage: unit-certs.sh DIR}
command -v openssl >/dev/null 2>&1 \
    || { echo "unit-certs.sh: openssl not found (Debian: ./build.sh deps)" >&2; exit 1; }
rm -rf "$d"
mkdir -p "$d"
cd "$d"
cat >openssl.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
fail() { echo "unit-certs.sh: cannot make the test certificates in $d (openssl)" >&2; exit 1; }
for n in ca other-ca; do
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -days 2 -subj "/CN=sc unit test $n" -config openssl.cnf \
        -extensions ca -keyout "$n.key" -out "$n.pem" 2>/dev/null || fail
done
for n in node1:ca node2:ca node3:ca node4:ca other-node1:other-ca; do
    name=${n%%:*} ca=${n#*:}
    route=${name#other-}
    printf '[leaf]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth,clientAuth\n' \
        >"$name.ext"
    # node4 is named by its CN alone
    [ "$name" = node4 ] || printf 'subjectAltName = DNS:%s\n' "$route" >>"$name.ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=$route" -config openssl.cnf -keyout "$name.key" \
        -out "$name.csr" 2>/dev/null || fail
    openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$name.ext" \
        -extensions leaf -out "$name.pem" 2>/dev/null || fail
    openssl verify -CAfile "$ca.pem" "$name.pem" >/dev/null || fail
done
chmod 600 ./*.key
