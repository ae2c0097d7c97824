package server

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseKeysErrors(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"", "no key"},
		{"# only a comment\n", "no key"},
		{"A\n", "line 1: want NAMESPACE KEY"},
		{"A short\n", "shorter than 20"},
		{"a:b key-of-namespace-a-0123456789\n", "namespace"},
		{"A key-of-namespace-a-0123456789\nB key-of-namespace-a-0123456789\n", "line 2: this key is already"},
		{"A key-of-namespace-a-0123456789 rate=fast\n", "rate"},
		{"A key-of-namespace-a-0123456789 tasks=-1\n", "tasks"},
		{"A key-of-namespace-a-0123456789 colour=blue\n", "unknown option"},
	} {
		_, err := ParseKeys(strings.NewReader(c.file), Quota{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error mentioning %q", c.file, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "0123456789") {
			t.Errorf("%q: the error shows the key: %v", c.file, err)
		}
	}
	ring, err := ParseKeys(strings.NewReader("A key-of-namespace-a-0123456789 tasks=5\nA second-key-of-a-0123456789 rate=2 # rotation\nB key-of-namespace-b-0123456789\n"),
		Quota{Tasks: 1, MemoryMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	if q := ring.Quota("A"); q.Tasks != 5 || q.Rate != 2 || q.MemoryMB != 64 {
		t.Fatalf("A's quota %+v: options of both lines over the defaults", q)
	}
	if q := ring.Quota("B"); q.Tasks != 1 {
		t.Fatalf("B's quota %+v: the defaults", q)
	}
	for key, ns := range map[string]string{"key-of-namespace-a-0123456789": "A", "second-key-of-a-0123456789": "A", "key-of-namespace-b-0123456789": "B"} {
		if got, ok := ring.lookup(key); !ok || got != ns {
			t.Errorf("lookup(%s) = %q %v, want %s", key, got, ok, ns)
		}
	}
	if _, ok := ring.lookup("key-of-namespace-a-012345678"); ok {
		t.Error("a prefix of a key is accepted")
	}
}

func TestBucket(t *testing.T) {
	var b buckets
	now := time.Unix(1000, 0)
	for i := range 10 {
		if _, ok := b.take("A", 1, 10, 10, now); !ok {
			t.Fatalf("submission %d of a full bucket of 10 refused", i+1)
		}
	}
	wait, ok := b.take("A", 1, 10, 10, now)
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("11th: ok %v, wait %v; want refused, 100ms", ok, wait)
	}
	if _, ok := b.take("B", 1, 10, 10, now); !ok {
		t.Fatal("another namespace is limited by A's bucket")
	}
	if _, ok := b.take("A", 1, 10, 10, now.Add(100*time.Millisecond)); !ok {
		t.Fatal("refilled token refused")
	}
	// A batch above the burst passes on a full bucket and leaves it in debt.
	if _, ok := b.take("C", 25, 10, 10, now); !ok {
		t.Fatal("a batch of 25 on a full bucket of 10 refused")
	}
	if wait, ok := b.take("C", 1, 10, 10, now.Add(time.Second)); ok || wait != 600*time.Millisecond {
		t.Fatalf("after the debt: ok %v, wait %v; want refused, 600ms", ok, wait)
	}
}

// BenchmarkKeyLookup is the CPU cost of authenticating one request against a ring of 100
// keys (SHA-256 of the key, then 100 constant-time comparisons).
func BenchmarkKeyLookup(b *testing.B) {
	var file strings.Builder
	for i := range 100 {
		file.WriteString("ns" + strconv.Itoa(i) + " key-number-" + strconv.Itoa(i) + "-padding-padding\n")
	}
	ring, err := ParseKeys(strings.NewReader(file.String()), Quota{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := ring.lookup("key-number-57-padding-padding"); !ok {
			b.Fatal("not found")
		}
	}
}

// BenchmarkRateTake is the CPU cost of the rate quota on one submission.
func BenchmarkRateTake(b *testing.B) {
	var bk buckets
	now := time.Now()
	for b.Loop() {
		bk.take("A", 1, 1e12, 1e12, now)
	}
}
