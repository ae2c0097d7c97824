package store_test

import (
	"fmt"
	"testing"

	"faas/store"
)

// TestClaimWeights: with weights 3 and 1, claims of one task take 3 of the heavy namespace
// for 1 of the light one, in a row (the turn carries over from claim to claim), and a claim
// of 8 takes 6 and 2; a third namespace without a weight counts 1. Back to no weights, the
// claims alternate again.
func TestClaimWeights(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	heavy, light := inNS(t, s, f, "heavy"), inNS(t, s, f, "light")
	if err := s.SetWeights(ctx, map[string]int{"heavy": 3, "unused": 5}); err != nil {
		t.Fatal(err)
	}
	nsOf := map[string]string{}
	for _, id := range submitNS(t, s, heavy, 200) {
		nsOf[id] = "H"
	}
	for _, id := range submitNS(t, s, light, 200) {
		nsOf[id] = "L"
	}
	claimed := func(n int) string {
		got, err := s.Claim(ctx, "d", n)
		if err != nil || len(got) != n {
			t.Fatalf("claim of %d: %d, %v", n, len(got), err)
		}
		out := ""
		for _, tk := range got {
			out += nsOf[tk.ID]
		}
		return out
	}
	var ones string
	for range 16 {
		ones += claimed(1)
	}
	// The first turn goes to whichever was announced last (the ring's head); after that,
	// turns of 3 and 1.
	if ones != "LHHHLHHHLHHHLHHH" && ones != "HHHLHHHLHHHLHHHL" {
		t.Fatalf("16 claims of one took %s; want turns of 3 H and 1 L", ones)
	}
	for range 5 {
		if got := claimed(8); count(got, 'H') != 6 || count(got, 'L') != 2 {
			t.Fatalf("a claim of 8 took %s; want 6 H and 2 L", got)
		}
	}
	if err := s.SetWeights(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var even string
	for range 8 {
		even += claimed(1)
	}
	if count(even, 'H') != 4 || count(even, 'L') != 4 {
		t.Fatalf("without weights, 8 claims of one took %s; want 4 and 4", even)
	}
	if err := s.SetWeights(ctx, map[string]int{"bad name!": 2}); err == nil {
		t.Fatal("a bad namespace name was accepted")
	}
}

func count(s string, c byte) int {
	n := 0
	for i := range len(s) {
		if s[i] == c {
			n++
		}
	}
	return n
}

// TestClaimManyNamespaces: a ring of more namespaces than one Lua unpack takes (the weights
// are read in chunks) is claimed in full, one task of each.
func TestClaimManyNamespaces(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	const n = 8200 // past Lua's unpack limit (about 8,000 values)
	weights := map[string]int{}
	for i := range n {
		ns := fmt.Sprintf("ns%04d", i)
		submitNS(t, s, inNS(t, s, f, ns), 1)
		weights[ns] = 1 + i%3
	}
	if err := s.SetWeights(ctx, weights); err != nil {
		t.Fatal(err)
	}
	got, err := s.Claim(ctx, "d", n)
	if err != nil || len(got) != n {
		t.Fatalf("claim of %d over %d namespaces: %d, %v", n, n, len(got), err)
	}
}
