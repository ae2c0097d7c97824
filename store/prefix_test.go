package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"faas/internal/redistest"
	"faas/store"
)

// TestTwoDeploymentsShareRedis: two prefixes on one Redis never see each other's functions,
// tasks, wake-ups or terminal announcements; the default deployment keeps faas's key names.
func TestTwoDeploymentsShareRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxT(t)
	c := srv.Client(t)
	a := store.New(c, store.Config{}) // the default deployment
	bp, err := store.KeyPrefix("blue")
	if err != nil {
		t.Fatal(err)
	}
	b := store.New(c, store.Config{Prefix: bp})
	type deployment struct {
		s           *store.Store
		tasks, done *redistest.Announcements
		fn          store.Function
		ids         []string
	}
	ds := map[string]*deployment{"faas": {s: a}, "blue": {s: b}}
	for name, d := range ds {
		d.tasks = srv.Count(t, name+":tasks")
		d.done = srv.Count(t, d.s.DoneChannel())
		d.fn = mkFunction(t, d.s, "same-name") // one name in both: each its own function
	}
	ds["faas"].ids = submitN(t, a, ds["faas"].fn, 20)
	ds["blue"].ids = submitN(t, b, ds["blue"].fn, 30)

	for name, d := range ds {
		other := ds["blue"]
		if name == "blue" {
			other = ds["faas"]
		}
		fs, err := d.s.Functions(ctx)
		if err != nil || len(fs) != 1 || fs[0].ID != d.fn.ID {
			t.Fatalf("%s: Functions = %v, %v; want only its own", name, fs, err)
		}
		if _, err := d.s.Function(ctx, other.fn.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: the other's function: %v; want ErrNotFound", name, err)
		}
		if _, err := d.s.Task(ctx, other.ids[0]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: the other's task: %v; want ErrNotFound", name, err)
		}
		if n, err := d.s.QueueLen(ctx); err != nil || n != int64(len(d.ids)) {
			t.Fatalf("%s: QueueLen = %d, %v; want %d", name, n, err, len(d.ids))
		}
		ts := claim(t, d.s, 100)
		got := idsOf(ts)
		if len(got) != len(d.ids) {
			t.Fatalf("%s: claimed %d; want %d", name, len(got), len(d.ids))
		}
		for _, id := range got {
			if !slices.Contains(d.ids, id) {
				t.Fatalf("%s claimed %s of the other deployment", name, id)
			}
		}
		if k, err := d.s.Complete(ctx, outcomes(ts)); k != len(ts) || err != nil {
			t.Fatalf("%s: Complete = %d, %v", name, k, err)
		}
	}
	for name, d := range ds {
		for ch, ann := range map[string]*redistest.Announcements{"tasks": d.tasks, "done": d.done} {
			missing, twice, unknown := ann.Once(d.ids, 5*time.Second)
			if len(missing)+len(twice)+len(unknown) != 0 {
				t.Fatalf("%s's %s channel: missing %v, twice %v, other's %v", name, ch, missing, twice, unknown)
			}
		}
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "faas:") && !strings.HasPrefix(k, "blue:") {
			t.Fatalf("key %q has neither prefix", k)
		}
	}
	if n := c.Exists(ctx, "faas:task:"+ds["faas"].ids[0], "faas:function:"+ds["faas"].fn.ID).Val(); n != 2 {
		t.Fatalf("the default deployment's keys moved: %d of 2 at faas:task:ID, faas:function:ID", n)
	}
}
