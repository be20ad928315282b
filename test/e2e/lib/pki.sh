# shellcheck shell=bash
# The node's PKI, made with openssl (ECDSA P-256, valid two days): a CA, the
# API server's serving certificate, client certificates for every component,
# the kubelet's serving certificate, and the service-account key pair.

# pki_key FILE: a new P-256 private key (PKCS#8).
pki_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# pki_ca NAME: a self-signed CA NAME.key and NAME.crt.
pki_ca() {
  pki_key "$PKI/$1.key"
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$E2E_NAME-$1" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/$1.crt" 2>/dev/null || die "openssl could not make the CA $1"
}

# pki_cert NAME SUBJECT EKU [SANS] [CA]: NAME.key and NAME.crt signed by CA (default ca).
# EKU is serverAuth or clientAuth; SANS is an openssl subjectAltName value.
pki_cert() {
  local name=$1 subj=$2 eku=$3 sans=${4:-} ca=${5:-ca}
  pki_key "$PKI/$name.key"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, digitalSignature"
    echo "extendedKeyUsage = $eku"
    [ -z "$sans" ] || echo "subjectAltName = $sans"
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 2 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null ||
    die "openssl could not sign the certificate $name ($subj)"
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

# pki_make writes the whole PKI under $PKI. The front-proxy CA and client let
# the API server authenticate to aggregated API servers (and lets every
# component find the request-header CA it looks up at start).
pki_make() {
  mkdir -p "$PKI" && chmod 0700 "$PKI"
  pki_ca ca
  pki_ca front-proxy-ca
  pki_cert front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
  pki_cert apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$E2E_NODE_IP,IP:$E2E_API_SERVICE_IP"
  pki_cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" clientAuth
  pki_cert admin "/O=system:masters/CN=$E2E_NAME-admin" clientAuth
  pki_cert kubelet-client "/O=system:nodes/CN=system:node:$E2E_NAME" clientAuth
  pki_cert kubelet-serving "/O=system:nodes/CN=system:node:$E2E_NAME" serverAuth "DNS:$E2E_NAME,IP:$E2E_NODE_IP"
  pki_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  pki_cert scheduler "/CN=system:kube-scheduler" clientAuth
  pki_cert kube-proxy "/CN=system:kube-proxy" clientAuth
  pki_key "$PKI/sa.key"
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 0600 "$PKI"/*.key
}

# kubeconfig FILE CERT_NAME: a kubeconfig that reaches the API server on
# loopback (inside the node's netns) with the client certificate CERT_NAME.
kubeconfig() {
  local file=$1 cert=$2
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: $E2E_NAME
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: $E2E_NAME
  context: {cluster: $E2E_NAME, user: $cert}
current-context: $E2E_NAME
KUBECONFIG
  chmod 0600 "$file"
}
