#!/bin/sh
# make-certs.sh DIR - the certificates tests/unit/test_tls.c runs with, made fresh on every run with
# the openssl command (EC P-256 keys: instant to generate):
#   ca.crt          the test CA; other-ca.crt another CA nobody trusts
#   server.crt      CN=localhost, SAN localhost and 127.0.0.1, signed by ca (SHA-256)
#   strong.crt      the same names signed with SHA-384 (tls-server-end-point then uses SHA-384)
#   client.crt      CN=alice, a client certificate signed by ca
#   wronghost.crt   CN=wrong.example, SAN wrong.example only, signed by ca
#   stranger.crt    localhost/127.0.0.1 signed by other-ca
#   expired.crt     localhost/127.0.0.1 signed by ca, valid in January 2020 only
#   garbage.pem     not PEM at all
# Each NAME.crt has its NAME.key. OpenSSL 3.0's `openssl x509` cannot set dates in the past (no
# -not_before/-not_after before 3.4), so the expired certificate comes from `openssl ca`, whose
# -startdate/-enddate take any dates (works on Debian 12's OpenSSL 3.0; no faketime needed).
set -eu
dir=$1
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

ca() { # name subject
  key "$1"
  openssl req -x509 -new -key "$1.key" -subj "$2" -days 30 -sha256 -out "$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

cert() { # name subject san ca digest
  key "$1"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$4.crt" -CAkey "$4.key" -CAcreateserial -days 30 "-$5" \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}

ca ca "/CN=pgsluice test CA"
ca other-ca "/CN=pgsluice untrusted CA"
cert server "/CN=localhost" "DNS:localhost,IP:127.0.0.1" ca sha256
cert strong "/CN=localhost" "DNS:localhost,IP:127.0.0.1" ca sha384
cert client "/CN=alice" "DNS:alice.example" ca sha256
cert wronghost "/CN=wrong.example" "DNS:wrong.example" ca sha256
cert stranger "/CN=localhost" "DNS:localhost,IP:127.0.0.1" other-ca sha256

key expired
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
cat > ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
CNF
: > index.txt
echo 1000 > serial
openssl ca -batch -notext -config ca.cnf -cert ca.crt -keyfile ca.key -startdate 20200101000000Z \
  -enddate 20200201000000Z -in expired.csr -out expired.crt 2>/dev/null

echo "this is not a certificate" > garbage.pem
