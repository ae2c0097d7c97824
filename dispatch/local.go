package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"faas/executor"
	"faas/sandbox"
	"faas/store"
	"faas/task"
)

// localPrefetch is how many claimed tasks local mode keeps ready beyond its running slots,
// so that a slot that frees up does not wait a Redis round trip for its next task.
const localPrefetch = 32

// prefetchBelow: local mode prefetches only while tasks run this fast on average. A round
// trip saved matters for short tasks only, while each prefetched task delays the tasks of
// other namespaces (fair share happens in the claim) by one run: with long tasks, claim no
// more than the free slots. Until runs are measured, tasks count as long.
const prefetchBelow = 20 * time.Millisecond

// runLocal runs tasks in an in-process pool of cfg.Workers sandboxes.
//
// One loop claims tasks (never more than the free slots plus a small prefetch, so the
// queue, not this process, holds the backlog) and cfg.Workers goroutines run them.
// Shutdown: stop claiming; hand back what was claimed but not started; let running tasks
// finish for up to DrainTimeout, then interrupt and hand them back too.
func runLocal(ctx context.Context, c *core, sb *sandbox.Sandbox, cfg Config, log *slog.Logger) error {
	ex := executor.New(sb, storeModules{c.st}, "local:"+cfg.Owner)
	waitEvictions := listenEvictions(ctx, c.st, log, evictFrom(sb, log))
	defer waitEvictions()
	capacity := cfg.Workers + min(localPrefetch, 2*cfg.Workers+8)
	jobs := make(chan localRun, capacity)
	freed := make(chan struct{}, 1)
	var pending atomic.Int64 // claimed and not yet finished
	var meanRun atomic.Int64 // moving average of a task's run, ns (lost updates are harmless)
	meanRun.Store(int64(2 * prefetchBelow))

	// Tasks run under runCtx: it outlives ctx by up to DrainTimeout so that a stop lets
	// running tasks finish instead of killing them.
	runCtx, interrupt := context.WithCancel(context.WithoutCancel(ctx))
	defer interrupt()
	runs := &localRuns{runs: make(map[string]localRun)}
	c.setStopper(runs.cancel)

	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range jobs {
				t := r.t
				start := time.Now()
				if errors.Is(context.Cause(r.ctx), errCancelled) {
					c.finish(cancelledOutcome(t.Ref(), ex.ID(), 0)) // cancelled before it started
				} else if ctx.Err() != nil {
					c.release(t.Ref()) // claimed, never started
				} else if out, err := c.execute(r.ctx, ex, t); err != nil {
					if errors.Is(context.Cause(r.ctx), errCancelled) {
						c.finish(cancelledOutcome(t.Ref(), ex.ID(), time.Since(start)))
					} else {
						c.release(t.Ref()) // interrupted at the end of the drain
					}
				} else {
					c.finish(out)
					m := meanRun.Load()
					meanRun.Store(m + (int64(time.Since(start))-m)/8)
				}
				runs.done(r)
				pending.Add(-1)
				select {
				case freed <- struct{}{}:
				default:
				}
			}
		}()
	}

	poll := time.NewTicker(cfg.Poll)
	defer poll.Stop()
	backoff := 50 * time.Millisecond
	queueEmpty := false
	for ctx.Err() == nil {
		limit := capacity
		if time.Duration(meanRun.Load()) > prefetchBelow {
			limit = cfg.Workers
		}
		free := limit - int(pending.Load())
		// Claim when slots are free; while the queue is known to hold work, wait for a
		// worthwhile batch rather than claiming one task per freed slot.
		if free > 0 && (queueEmpty || free >= limit/2 || pending.Load() < int64(cfg.Workers)) {
			tasks, err := c.claim(ctx, min(free, cfg.ClaimBatch))
			switch {
			case err != nil && ctx.Err() == nil:
				if errors.Is(err, store.ErrUnavailable) {
					log.Warn("claiming tasks failed; retrying", "err", err, "backoff", backoff)
				} else {
					log.Error("claiming tasks failed; retrying", "err", err, "backoff", backoff)
				}
				sleep(ctx, backoff)
				backoff = min(2*backoff, 2*time.Second)
				continue
			case err == nil:
				backoff = 50 * time.Millisecond
			}
			pending.Add(int64(len(tasks)))
			for _, t := range tasks {
				jobs <- runs.add(runCtx, t) // never blocks: at most capacity are pending
			}
			queueEmpty = len(tasks) < min(free, cfg.ClaimBatch)
			if !queueEmpty {
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-c.woken():
			queueEmpty = true
		case <-freed:
		case <-poll.C:
			queueEmpty = true
		}
	}

	// Stop: workers hand back queued jobs (ctx is done) and finish running ones.
	close(jobs)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.DrainTimeout):
		log.Warn("running tasks did not finish in time; handing them back", "tasks", pending.Load())
		interrupt()
		<-done
	}
	return nil
}

// execute runs t, counted as running in the live registry meanwhile.
func (c *core) execute(ctx context.Context, ex *executor.Executor, t task.Task) (task.Outcome, error) {
	c.live.running.Add(1)
	defer c.live.running.Add(-1)
	return ex.Execute(ctx, t)
}

// storeModules serves modules from Redis to the local executor.
type storeModules struct{ st *store.Store }

func (s storeModules) Module(ctx context.Context, hash string) ([]byte, error) {
	return s.st.Module(ctx, hash)
}
