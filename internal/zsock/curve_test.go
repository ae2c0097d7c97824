package zsock

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/testutil"
)

// curveServer binds a CURVE ROUTER guarded by a ZAP handler in a context of its own.
func curveServer(t *testing.T, k KeyPair, allow *AllowList) (*zmq.Socket, string) {
	t.Helper()
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	zap, err := StartZAP(zctx, allow, ZAPLimit{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := zctx.NewSocket(zmq.ROUTER)
	if err != nil {
		t.Fatal(err)
	}
	r.SetLinger(0)
	if err := CurveServer(r, k); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(t))
	if err := r.Bind(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		zap.Close()
		Terminate(zctx, time.Second)
	})
	return r, addr
}

func curveClient(t *testing.T, k KeyPair, server, addr string) *zmq.Socket {
	t.Helper()
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	d, err := zctx.NewSocket(zmq.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	d.SetLinger(0)
	if err := CurveClient(d, k, server); err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); Terminate(zctx, time.Second) })
	return d
}

// The handler lives in the server's own context (not ZeroMQ's default one): an unlisted
// key is refused, a listed one gets through with its key as User-Id, and a key removed
// from the list is refused on its next connection.
func TestZAPInOwnContext(t *testing.T) {
	srv, _ := NewKeyPair()
	good, _ := NewKeyPair()
	rogue, _ := NewKeyPair()
	allow := NewAllowList([]string{good.Public})
	r, addr := curveServer(t, srv, allow)

	bad := curveClient(t, rogue, srv.Public, addr)
	bad.SendMessage("", "from rogue")
	ok := curveClient(t, good, srv.Public, addr)
	ok.SendMessage("", "from good")

	r.SetRcvtimeo(3 * time.Second)
	msg, meta, err := r.RecvMessageBytesWithMetadata(0, "User-Id")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(msg[len(msg)-1]); got != "from good" {
		t.Fatalf("first message is %q, want the listed key's", got)
	}
	if meta["User-Id"] != good.Public {
		t.Fatalf("User-Id = %q, want the client's public key", meta["User-Id"])
	}
	r.SetRcvtimeo(500 * time.Millisecond)
	if msg, err := r.RecvMessageBytes(0); err == nil {
		t.Fatalf("the unlisted key got a message through: %q", msg)
	}

	allow.Set(nil)
	again := curveClient(t, good, srv.Public, addr)
	again.SendMessage("", "after removal")
	if msg, err := r.RecvMessageBytes(0); err == nil {
		t.Fatalf("a removed key connected anew: %q", msg)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	k, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "w")
	if err := WriteKeyPair(base, k); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(base, k); err == nil {
		t.Fatal("overwrote an existing key")
	}
	st, _ := os.Stat(base + ".key")
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("secret key mode %v, want 0600", st.Mode().Perm())
	}
	got, err := ReadKeyPair(base + ".key")
	if err != nil || got != k {
		t.Fatalf("ReadKeyPair = %v, %v", got.Public, err)
	}
	pub, err := ReadPublicKey(base + ".pub")
	if err != nil || pub != k.Public {
		t.Fatalf("ReadPublicKey(file) = %q, %v", pub, err)
	}
	if pub, err := ReadPublicKey(k.Public); err != nil || pub != k.Public {
		t.Fatalf("ReadPublicKey(string) = %q, %v", pub, err)
	}
	os.Chmod(base+".key", 0o644)
	if _, err := ReadKeyPair(base + ".key"); err == nil {
		t.Fatal("a world-readable secret key was accepted")
	} else if strings.Contains(err.Error(), k.Secret) {
		t.Fatal("the error shows the secret key")
	}
	list := filepath.Join(dir, "authorized")
	os.WriteFile(list, []byte("# workers\n"+k.Public+"  # w1\n\n"), 0o644)
	if keys, err := ReadAuthorized(list); err != nil || len(keys) != 1 || keys[0] != k.Public {
		t.Fatalf("ReadAuthorized = %v, %v", keys, err)
	}
	os.WriteFile(list, []byte(k.Public+"\nnot-a-key\n"), 0o644)
	if _, err := ReadAuthorized(list); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad line: err = %v, want one naming line 2", err)
	}
}

func TestZAPRateLimit(t *testing.T) {
	b := map[string]*bucket{}
	now := time.Now()
	lim := ZAPLimit{Burst: 2, PerSecond: 1}
	if !take(b, "k", lim, now) || !take(b, "k", lim, now) {
		t.Fatal("the burst was refused")
	}
	if take(b, "k", lim, now) {
		t.Fatal("a third handshake at once passed a burst of 2")
	}
	if !take(b, "k", lim, now.Add(1100*time.Millisecond)) {
		t.Fatal("the bucket did not refill")
	}
}
