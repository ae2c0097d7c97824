package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/samples"
)

// testCA is a certificate authority made for one test, writing PEM files in dir.
type testCA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	File string // the CA certificate
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "faas test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{dir: t.TempDir(), cert: cert, key: key}
	ca.File = ca.write(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue makes a certificate for 127.0.0.1 usable by servers and clients; returns its files.
func (ca *testCA) issue(t *testing.T, name string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return ca.write(t, name+".pem", "CERTIFICATE", der), ca.write(t, name+".key", "EC PRIVATE KEY", kder)
}

// redisACL are the rules of the Redis user faas needs (README, "Redis topologies"): its
// keys, its two channels (faas:tasks, faas:done), and no administrative or dangerous command.
const redisACL = "resetkeys ~faas:* resetchannels &faas:* -@all +@read +@write +@scripting +@pubsub +@connection +time -@dangerous"

func TestTLSEndToEnd(t *testing.T) {
	ca := newTestCA(t)
	redisCert, redisKey := ca.issue(t, "redis", 2)
	serverCert, serverKey := ca.issue(t, "server", 3)
	clientCert, clientKey := ca.issue(t, "faas", 4)
	tlsPort := strconv.Itoa(testutil.FreePort(t))
	rs := redistest.Start(t, "--tls-port", tlsPort, "--tls-cert-file", redisCert, "--tls-key-file", redisKey,
		"--tls-ca-cert-file", ca.File, "--tls-auth-clients", "yes")
	// faas runs as the ACL user docs/RATIONALE.md ("Tenants") documents, with its password.
	const password = "redis-password-not-in-argv"
	acl := []any{"ACL", "SETUSER", "faas", "on", ">" + password}
	for _, r := range strings.Fields(redisACL) {
		acl = append(acl, r)
	}
	if err := rs.Client(t).Do(t.Context(), acl...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client(t).Do(t.Context(), "ACL", "SETUSER", "default", "off").Err(); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "redis.pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyLine, _, _ := runCLI(t, t.Context(), "", "apikey", "ops")
	keys := writeFile(t, "keys", []byte(keyLine))
	redisArgs := []string{"--redis", "rediss://faas@127.0.0.1:" + tlsPort + "/0", "--redis-ca", ca.File,
		"--redis-cert", clientCert, "--redis-key", clientKey, "--redis-password-file", pwFile}

	srv := startDaemon(t, append([]string{"server", "--addr", "127.0.0.1:0", "--cache-dir", "", "--api-keys", keys,
		"--tls-cert", serverCert, "--tls-key", serverKey}, redisArgs...)...)
	addr := srv.waitLog(t, listenRE)
	startDaemon(t, append([]string{"dispatcher", "-m", "local", "-w", "1", "--cache-dir", ""}, redisArgs...)...)
	url := "https://" + addr
	t.Setenv("FAAS_API_KEY", strings.Fields(keyLine)[1])

	// Without the CA the client refuses the server's certificate; over http:// it fails.
	cliOK(t, url, "", ExitServer, "functions")
	cliOK(t, "http://"+addr, "", ExitServer, "functions")
	double := writeFile(t, "double.wasm", samples.DoubleWAT)
	cliOK(t, url, "", 0, "register", "double", double, "--ca-file", ca.File)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(srv.stderr.String())
		}
	})
	if out, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "21", "--wait", "--timeout", "30s", "--ca-file", ca.File); out != "42" {
		t.Fatalf("exec over TLS printed %q", out)
	}
	// SIGHUP: a renewed certificate is served to new connections.
	if serial := servedSerial(t, addr, ca.File); serial != 3 {
		t.Fatalf("serial %d served, want 3", serial)
	}
	renewed, renewedKey := ca.issue(t, "server-renewed", 5)
	for src, dst := range map[string]string{renewed: serverCert, renewedKey: serverKey} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	srv.waitLog(t, regexp.MustCompile(`SIGHUP: TLS certificate reloaded`))
	if serial := servedSerial(t, addr, ca.File); serial != 5 {
		t.Fatalf("serial %d served after SIGHUP, want 5", serial)
	}
	if strings.Contains(srv.stderr.String(), password) {
		t.Fatalf("the server log shows the Redis password")
	}
	// A client of Redis's TLS port without a certificate is refused by Redis.
	nocert := startDaemon(t, "server", "--addr", "127.0.0.1:0", "--cache-dir", "", "--api-keys", keys,
		"--redis", "rediss://faas@127.0.0.1:"+tlsPort+"/0", "--redis-ca", ca.File, "--redis-password-file", pwFile)
	nocert.waitLog(t, regexp.MustCompile(`Redis is not reachable yet`))
	_, errs, code := runCLI(t, t.Context(), "", "server", "--addr", "127.0.0.1:0", "--cache-dir", "",
		"--redis", "rediss://127.0.0.1:"+tlsPort+"/0", "--redis-ca", ca.File, "--redis-cert", clientCert)
	if code != ExitUsage || !strings.Contains(errs, "--redis-cert and --redis-key go together") {
		t.Fatalf("cert without key: exit %d %q", code, errs)
	}
}

// servedSerial connects to addr over TLS and returns the serial of the certificate served.
func servedSerial(t *testing.T, addr, caFile string) int64 {
	t.Helper()
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestSecretsStayOutOfMessages(t *testing.T) {
	for _, u := range []string{"redis://user:s3cret-pw@bad host:1/0", "redis://:s3cret-pw@[::1/0", "rediss://u:s3cret-pw@h:notaport/0"} {
		_, errs, code := runCLI(t, t.Context(), "", "server", "--redis", u, "--cache-dir", "")
		if code != ExitUsage || strings.Contains(errs, "s3cret-pw") || !strings.Contains(errs, "xxxxx") {
			t.Errorf("--redis %s: exit %d, stderr %q (want a usage error with the password redacted)", u, code, errs)
		}
	}
}

func TestCacheDirOwnership(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // whatever the umask
		t.Fatal(err)
	}
	_, errs, code := runCLI(t, t.Context(), "", "dev", "--addr", "127.0.0.1:0", "--cache-dir", dir)
	if code != ExitUsage || !strings.Contains(errs, "writable by group or others") {
		t.Fatalf("group-writable cache dir: exit %d, %q", code, errs)
	}
	if os.Getuid() == 0 {
		// root: a directory of another user is the other case.
		other := filepath.Join(t.TempDir(), "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		_, errs, code = runCLI(t, t.Context(), "", "dev", "--addr", "127.0.0.1:0", "--cache-dir", other)
		if code != ExitUsage || !strings.Contains(errs, "belongs to uid 12345") {
			t.Fatalf("cache dir of another user: exit %d, %q", code, errs)
		}
	}
	_, errs, code = runCLI(t, t.Context(), "", "dev", "--addr", "0.0.0.0:0", "--cache-dir", "")
	if code != ExitUsage || !strings.Contains(errs, "refusing to serve without API keys") {
		t.Fatalf("dev off loopback: exit %d, %q", code, errs)
	}
}
