#!/usr/bin/env bash
# Make a private CA and a broker certificate for mosquitto's TLS listener (and optionally client
# certificates). Self-contained on purpose: edge devices only need ca.crt to verify the broker, and a
# private CA avoids depending on a public one for a fleet that may live on an isolated network.
#
# Usage: make_certs.sh OUT_DIR [--host NAME_OR_IP]... [--client NAME]... [--days N]
#   The server certificate always carries SAN IP:127.0.0.1 and DNS:localhost (loopback use, tests);
#   every --host adds a DNS: (or IP: when it looks like an address) entry for the broker's real name.
#   Re-running keeps an existing CA (ca.key/ca.crt) so already-deployed devices keep trusting the broker.
# Output in OUT_DIR: ca.crt ca.key server.crt server.key [client-NAME.crt client-NAME.key]
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
out="$1"; shift
hosts=(); clients=(); days=825
while [ $# -gt 0 ]; do
  case "$1" in
    --host) hosts+=("$2"); shift 2 ;;
    --client) clients+=("$2"); shift 2 ;;
    --days) days="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "make_certs.sh: unknown argument: $1" >&2; usage ;;
  esac
done

mkdir -p "$out"
cd "$out"
umask 077

if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -keyout ca.key -out ca.crt -subj "/CN=edgebench MQTT CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

san="IP:127.0.0.1,DNS:localhost"
cn="localhost"
for h in "${hosts[@]+"${hosts[@]}"}"; do
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san="$san,IP:$h"; else san="$san,DNS:$h"; cn="$h"; fi
done

sign() {  # sign NAME CN EXTFILE_CONTENT
  local name="$1" subj_cn="$2" ext="$3"
  openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$name.key" -out "$name.csr" \
    -subj "/CN=$subj_cn" 2>/dev/null
  printf '%s\n' "$ext" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days "$days" \
    -out "$name.crt" -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

sign server "$cn" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"

for c in "${clients[@]+"${clients[@]}"}"; do
  sign "client-$c" "$c" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
done

# The broker reads these after dropping privileges (user mosquitto): certificates are public, the
# server key must be readable by that user — the deploy step chowns it; keep it 0640 here.
chmod 0644 ca.crt server.crt
chmod 0640 server.key
rm -f ca.srl
echo "certificates in $(pwd): ca.crt server.crt server.key${clients[*]:+ (clients: ${clients[*]})}" >&2
