package zsock

// This file: CURVE keys (generating, reading and writing them), the options that put CURVE on
// a socket, and the bound on message size every dispatcher↔worker socket carries.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	zmq "github.com/pebbe/zmq4"
)

// ErrBadKey is returned for a key or key file that cannot be used. Its messages never hold
// a secret key.
var ErrBadKey = errors.New("bad CURVE key")

// KeyPair is a CURVE key pair, both halves in Z85 (40 characters each).
type KeyPair struct {
	Public string
	Secret string
}

// IsZero reports whether no key pair is set (CURVE off).
func (k KeyPair) IsZero() bool { return k.Secret == "" }

// NewKeyPair generates a key pair.
func NewKeyPair() (KeyPair, error) {
	if !zmq.HasCurve() {
		return KeyPair{}, fmt.Errorf("%w: this libzmq was built without CURVE", ErrBadKey)
	}
	pub, sec, err := zmq.NewCurveKeypair()
	if err != nil {
		return KeyPair{}, fmt.Errorf("generating a CURVE key pair: %w", err)
	}
	return KeyPair{Public: pub, Secret: sec}, nil
}

// ParsePublicKey checks a Z85 public key (surrounding spaces are ignored).
func ParsePublicKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) != 40 || len(zmq.Z85decode(s)) != 32 {
		return "", fmt.Errorf("%w: want a 40-character Z85 public key", ErrBadKey)
	}
	return s, nil
}

// WriteKeyPair writes path+".key" (the secret key, mode 0600) and path+".pub" (the public
// key). It refuses to overwrite either: replacing a key is a deliberate rotation.
func WriteKeyPair(path string, k KeyPair) error {
	secret, public := path+".key", path+".pub"
	for _, p := range []string{secret, public} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists: remove it first to replace the key: %w", p, fs.ErrExist)
		}
	}
	f, err := os.OpenFile(secret, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing the secret key: %w", err)
	}
	_, err = fmt.Fprintf(f, "# faas CURVE secret key: keep it private (mode 0600)\n%s\n", k.Secret)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(secret)
		return fmt.Errorf("writing the secret key: %w", err)
	}
	if err := os.WriteFile(public, []byte(k.Public+"\n"), 0o644); err != nil {
		os.Remove(secret)
		return fmt.Errorf("writing the public key: %w", err)
	}
	return nil
}

// ReadKeyPair reads a secret key file written by WriteKeyPair and derives its public key.
// A file that group or others may read is refused: its key may already be known.
func ReadKeyPair(path string) (KeyPair, error) {
	st, err := os.Stat(path)
	if err != nil {
		return KeyPair{}, fmt.Errorf("key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return KeyPair{}, fmt.Errorf("%w: %s is readable by others (mode %v): chmod 600 it", ErrBadKey, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return KeyPair{}, fmt.Errorf("key file: %w", err)
	}
	lines := keyLines(b)
	if len(lines) != 1 || len(lines[0]) != 40 || len(zmq.Z85decode(lines[0])) != 32 {
		return KeyPair{}, fmt.Errorf("%w: %s does not hold one 40-character Z85 secret key (write one with faas keygen)", ErrBadKey, path)
	}
	pub, err := zmq.AuthCurvePublic(lines[0])
	if err != nil {
		return KeyPair{}, fmt.Errorf("%w: %s: deriving its public key failed", ErrBadKey, path)
	}
	return KeyPair{Public: pub, Secret: lines[0]}, nil
}

// ReadPublicKey takes a Z85 public key, or the name of a file holding one.
func ReadPublicKey(arg string) (string, error) {
	if k, err := ParsePublicKey(arg); err == nil {
		return k, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return "", fmt.Errorf("%w: %q is neither a Z85 public key nor a readable file", ErrBadKey, arg)
	}
	lines := keyLines(b)
	if len(lines) != 1 {
		return "", fmt.Errorf("%w: %s does not hold one public key", ErrBadKey, arg)
	}
	k, err := ParsePublicKey(lines[0])
	if err != nil {
		return "", fmt.Errorf("%s: %w", arg, err)
	}
	return k, nil
}

// ReadAuthorized reads an allow-list: one Z85 public key per line; blank lines, comment
// lines and comments after a key (see stripComment) are ignored. A bad line is an error
// naming its number.
func ReadAuthorized(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authorized workers: %w", err)
	}
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := stripComment(sc.Text())
		if line == "" {
			continue
		}
		k, err := ParsePublicKey(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("authorized workers: %w", err)
	}
	return keys, nil
}

func keyLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = stripComment(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// stripComment removes a comment from a line of a key file and trims it. '#' is one of
// Z85's characters, so a comment is a '#' after white space, or a line starting with '#'
// that is not a key itself (a key has no spaces; a comment line that could be one is not
// told apart: start comments with "# ").
func stripComment(l string) string {
	if i := strings.IndexAny(l, " \t"); i >= 0 {
		if j := strings.Index(l[i:], "#"); j >= 0 && strings.TrimSpace(l[i:i+j]) == "" {
			l = l[:i+j]
		}
	}
	l = strings.TrimSpace(l)
	if strings.HasPrefix(l, "#") && (len(l) != 40 || len(zmq.Z85decode(l)) != 32) {
		return ""
	}
	return l
}

// zapDomain is the ZAP domain of the dispatcher's sockets: setting one makes libzmq consult
// the ZAP handler for every handshake.
const zapDomain = "faas"

// CurveServer makes s a CURVE server with key k, authenticated by the ZAP handler of its
// context (StartZAP must have bound it before s binds: see zap.go).
func CurveServer(s *zmq.Socket, k KeyPair) error {
	if err := s.SetZapDomain(zapDomain); err != nil {
		return err
	}
	if err := s.SetCurveServer(1); err != nil {
		return err
	}
	if err := s.SetCurveSecretkey(k.Secret); err != nil {
		return fmt.Errorf("%w: the secret key was refused", ErrBadKey)
	}
	return nil
}

// CurveClient makes s a CURVE client with key k that accepts only the server key server.
func CurveClient(s *zmq.Socket, k KeyPair, server string) error {
	if err := s.SetCurveServerkey(server); err != nil {
		return fmt.Errorf("%w: the dispatcher key was refused", ErrBadKey)
	}
	if err := s.SetCurvePublickey(k.Public); err != nil {
		return fmt.Errorf("%w: the public key was refused", ErrBadKey)
	}
	if err := s.SetCurveSecretkey(k.Secret); err != nil {
		return fmt.Errorf("%w: the secret key was refused", ErrBadKey)
	}
	return nil
}

// Bounds limit what one received message may hold in memory; a message past either is
// read to its end and discarded frame by frame (see Recv).
type Bounds struct {
	Frames int // most frames; 0 = no bound
	Bytes  int // most bytes over all frames; 0 = no bound
}

// Recv receives a multipart message and, when withUser, the "User-Id" its sender's
// connection was authenticated with ("" without CURVE). A message past b is consumed to its
// end without keeping the frames beyond the bound, and over is true: a peer's message costs
// at most b (and one frame, which ZMQ_MAXMSGSIZE bounds) whatever it claims to carry.
//
// The user id is read from the second frame, not the first: libzmq 4.3's ROUTER attaches
// no metadata to the routing-id frame it makes up when a poll (zmq_poll's has_in)
// prefetched the message, and the hub always polls. Every frame after it carries the
// connection's metadata.
func Recv(s *zmq.Socket, flags zmq.Flag, withUser bool, b Bounds) (frames [][]byte, user string, over bool, err error) {
	first, err := s.RecvBytes(flags)
	if err != nil {
		return nil, "", false, err
	}
	frames = append(frames, first)
	size := len(first)
	for {
		more, err := s.GetRcvmore()
		if err != nil || !more {
			return frames, user, over, err
		}
		var f []byte
		if withUser && len(frames) == 1 && !over {
			var meta map[string]string
			f, meta, err = s.RecvBytesWithMetadata(flags, "User-Id")
			user = meta["User-Id"]
		} else {
			f, err = s.RecvBytes(flags)
		}
		if err != nil {
			return frames, user, over, err
		}
		size += len(f)
		if over || b.Frames > 0 && len(frames) >= b.Frames || b.Bytes > 0 && size > b.Bytes {
			over = true
			continue // drop it: read to the end of the message, keep nothing more
		}
		frames = append(frames, f)
	}
}
