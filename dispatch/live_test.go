package dispatch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/samples"
	"faas/store"
)

// TestLiveEntry: in every mode the dispatcher publishes itself (mode, address, version,
// slots) and, in remote modes, its worker; running counts tasks while they run, a worker's
// done counts its outcomes after; a clean stop removes the entry at once.
func TestLiveEntry(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixture(t, mode)
			cfg := f.cfg
			cfg.Owner, cfg.Version = "d-"+string(mode), "test-version"
			stop := f.start(t, cfg)
			if mode.Remote() {
				f.startWorker(t, "w1", 2)
			}
			ctx := context.Background()
			entry := func() (store.Dispatcher, string) {
				ds, err := f.st.Dispatchers(ctx)
				if err != nil || len(ds) != 1 {
					return store.Dispatcher{}, fmt.Sprintf("%+v, %v", ds, err)
				}
				return ds[0], fmt.Sprintf("%+v", ds[0])
			}
			testutil.WaitForProgress(t, 10*time.Second, "the dispatcher's entry", func() (bool, string) {
				d, s := entry()
				ok := d.ID == cfg.Owner && d.Mode == string(mode) && d.Version == "test-version" && d.Slots == 2 &&
					!d.StartedAt.IsZero() && time.Since(d.HeardAt) < 5*time.Second
				if mode.Remote() {
					ok = ok && d.Address == fmt.Sprintf("127.0.0.1:%d", f.port) && len(d.Workers) == 1 && d.Workers[0].ID == "w1"
				} else {
					ok = ok && d.Address == "" && len(d.Workers) == 0
				}
				return ok, s
			})
			fn := f.register(t, "sleep", samples.Sleep)
			ids := f.submit(t, fn, repeat(2, "800"))
			testutil.WaitForProgress(t, 10*time.Second, "tasks seen running", func() (bool, string) {
				d, s := entry()
				if mode.Remote() {
					return d.Running > 0 && len(d.Workers) == 1 && d.Workers[0].Running > 0, s
				}
				return d.Running > 0, s
			})
			f.waitTerminal(t, ids, 20*time.Second)
			testutil.WaitForProgress(t, 10*time.Second, "running back to 0 and done counted", func() (bool, string) {
				d, s := entry()
				if mode.Remote() {
					return d.Running == 0 && d.Done == 2 && len(d.Workers) == 1 && d.Workers[0].Done == 2 && d.Workers[0].Running == 0, s
				}
				return d.Running == 0 && d.Done == 2 && d.Slots == 2, s
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if ds, err := f.st.Dispatchers(ctx); err != nil || len(ds) != 0 {
				t.Fatalf("after a clean stop: %+v, %v", ds, err)
			}
		})
	}
}
