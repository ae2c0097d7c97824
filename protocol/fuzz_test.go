package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fuzzers feed Decode frame sequences built from one byte string: a frame is a 2-byte
// big-endian length then that many bytes (see splitFrames). Seeds live in
// testdata/fuzz/FuzzDecode; `go test -fuzz FuzzDecode ./protocol` explores from them.

func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) >= 2 && len(frames) < 64 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		frames = append(frames, data[:n])
		data = data[n:]
	}
	return frames
}

func joinFrames(frames [][]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// FuzzDecode checks that Decode never panics, that it refuses with one of its two errors,
// and that whatever it accepts encodes to frames that decode to the same message.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(joinFrames(Encode(m)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(splitFrames(data))
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("Decode error %v is neither ErrMalformed nor ErrVersion", err)
			}
			return
		}
		again, err := Decode(Encode(m))
		if err != nil {
			t.Fatalf("re-decoding %#v: %v", m, err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(m)) {
			t.Fatalf("re-decoded %#v, want %#v", again, m)
		}
	})
}

// FuzzSplitEnvelope checks the envelope split never panics and keeps every frame.
func FuzzSplitEnvelope(f *testing.F) {
	f.Add(joinFrames(append([][]byte{[]byte("id"), []byte("corr"), {}}, Encode(RequestTask{Worker: "w", Want: 2})...)))
	f.Add(joinFrames([][]byte{{}, {}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		frames := splitFrames(data)
		env, body, ok := SplitEnvelope(frames)
		if ok || env != nil {
			if len(env)+len(body) != len(frames) || len(env[len(env)-1]) != 0 {
				t.Fatalf("split %d frames into %d + %d", len(frames), len(env), len(body))
			}
			for _, f := range env[:len(env)-1] {
				if bytes.Equal(f, nil) {
					t.Fatal("empty frame inside the envelope")
				}
			}
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz from sampleMessages when
// FAAS_WRITE_FUZZ_SEEDS=1 (run it after changing a message's frames).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("FAAS_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set FAAS_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, m := range sampleMessages() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", joinFrames(Encode(m)))
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := joinFrames(append([][]byte{[]byte("id"), []byte("corr"), {}}, Encode(Bye{Sender: "w"})...))
	dir = filepath.Join("testdata", "fuzz", "FuzzSplitEnvelope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "req_bye"), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", env)), 0o644); err != nil {
		t.Fatal(err)
	}
}
