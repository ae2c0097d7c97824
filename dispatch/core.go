package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"faas/store"
	"faas/task"
)

// core is what every mode shares: claiming tasks, holding their leases, writing outcomes
// and hand-backs in batches, and recovering tasks whose dispatcher died.
//
// Modes call claim from their own goroutine, and finish/lost/release from any goroutine:
// those three never wait on Redis (a single writer goroutine does, in batches), so a
// ZeroMQ socket loop is never blocked by an outage.
type core struct {
	st  *store.Store
	cfg Config
	log *slog.Logger
	m   *dispatchMetrics

	ops  chan op       // outcomes and hand-backs for the writer
	wake chan struct{} // coalesced "there may be new tasks"

	mu   sync.Mutex
	held map[string]heldTask // task id → what it is, for lease renewal and outcome logs

	outcomes *outcomeLog
	stop     atomic.Pointer[stopper] // the mode's way of stopping cancelled tasks (cancel.go)
	live     liveState               // what the live registry says of this dispatcher (live.go)

	// Lost claims, owned by the goroutine that calls claim (see claim).
	claimFailed bool      // a claim failed: Redis may have run it all the same
	sweepAt     time.Time // when to look for tasks such a claim took; zero: no need
}

// sweepDelay is how long after Redis answers again the stray sweep waits: commands queued
// while Redis was frozen run as soon as it resumes, within this delay.
const sweepDelay = 500 * time.Millisecond

type opKind int

const (
	opFinish  opKind = iota // record an outcome
	opLost                  // worker lost: re-queue, attempt charged
	opRelease               // never ran or interrupted by shutdown: hand back, not charged
	opSent                  // sent to a remote worker: record it and its connection
)

type op struct {
	kind    opKind
	outcome task.Outcome
	ref     task.Ref
	via     string        // opFinish: the connection a remote outcome came on ("" local)
	sent    *store.SentTo // opSent
}

// writeBatch bounds how many operations one Redis round trip carries.
const writeBatch = 512

func newCore(st *store.Store, cfg Config, log *slog.Logger, m *dispatchMetrics) *core {
	return &core{
		st:   st,
		cfg:  cfg,
		log:  log,
		m:    m,
		ops:  make(chan op, 4096),
		wake: make(chan struct{}, 1),
		held: make(map[string]heldTask),

		outcomes: newOutcomeLog(log),
		live:     liveState{started: time.Now().UTC()},
	}
}

// claim takes up to n tasks from the queue and holds their leases. Modes call it from one
// goroutine.
//
// A claim that failed may have run in Redis all the same (its answer was lost: a frozen
// Redis runs the commands queued in its sockets when it resumes, long after the caller timed
// out). The tasks it took are leased to this dispatcher, which does not know it holds them;
// left alone they would run again only when their leases expire, attempt charged. So once
// claims succeed again, claim hands back (uncharged) every task leased to this owner that it
// does not hold. The sweep runs here, between claims, so that no claim is in flight.
func (c *core) claim(ctx context.Context, n int) ([]task.Task, error) {
	if n <= 0 {
		return nil, nil
	}
	if !c.sweepAt.IsZero() && time.Now().After(c.sweepAt) {
		c.sweepStrays(ctx)
	}
	tasks, err := c.st.Claim(ctx, c.cfg.Owner, n)
	if err != nil {
		c.m.claimErrors.Inc()
		c.claimFailed = true
		return nil, err
	}
	c.m.claimSize.Observe(float64(len(tasks)))
	if c.claimFailed {
		c.claimFailed = false
		c.sweepAt = time.Now().Add(sweepDelay)
	}
	if len(tasks) > 0 {
		c.mu.Lock()
		for _, t := range tasks {
			c.held[t.ID] = heldTask{attempt: t.Attempt, function: t.Name}
		}
		c.mu.Unlock()
	}
	return tasks, nil
}

func (c *core) sweepStrays(ctx context.Context) {
	c.mu.Lock()
	held := make([]string, 0, len(c.held))
	for id := range c.held {
		held = append(held, id)
	}
	c.mu.Unlock()
	n, err := c.st.ReleaseStrays(ctx, c.cfg.Owner, held)
	if err != nil {
		c.log.Warn("handing back the tasks of lost claims failed; retrying", "err", err)
		return // sweepAt stays: the next claim tries again
	}
	c.sweepAt = time.Time{}
	c.m.released.Add(float64(n))
	if n > 0 {
		c.log.Info("handed back tasks taken by claims whose answer was lost", "tasks", n)
		c.signalWake()
	}
}

// finish, lost and release are where every mode's outcomes and hand-backs pass: they are
// counted here, when handed to the writer (before Redis records them).
func (c *core) finish(o task.Outcome) { c.finishFrom(o, "") }

// finishFrom is finish for an outcome a remote worker sent on connection via: the store
// applies it only if the task was sent on that connection.
func (c *core) finishFrom(o task.Outcome, via string) {
	c.m.outcome(o)
	c.live.done.Add(1)
	c.mu.Lock()
	fn := c.held[o.ID].function
	c.mu.Unlock()
	c.outcomes.finished(o, fn)
	c.ops <- op{kind: opFinish, outcome: o, ref: o.Ref, via: via}
}

// sent records (through the writer, so before any outcome of theirs) that tasks went to a
// remote worker on connection via.
func (c *core) sent(worker, via string, refs []task.Ref) {
	c.ops <- op{kind: opSent, sent: &store.SentTo{Worker: worker, Via: via, Refs: refs}}
}

func (c *core) lost(r task.Ref) {
	c.m.lost.Inc()
	c.ops <- op{kind: opLost, ref: r}
}

func (c *core) release(r task.Ref) {
	c.m.released.Inc()
	c.ops <- op{kind: opRelease, ref: r}
}

// woken returns the channel that receives when new tasks may be queued.
func (c *core) woken() <-chan struct{} { return c.wake }

func (c *core) signalWake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run runs the writer, the lease renewer, the recoverer, the "tasks" and "cancel"
// listeners and the live registry's publisher. The listeners, publisher and recoverer stop
// with modeCtx (no new work once the mode stops); the renewer and the writer stop with ctx,
// the writer after it has written everything the mode handed it.
func (c *core) run(ctx, modeCtx context.Context) error {
	// Leases are renewed four times per LeaseTTL, so a renewal may fail (or be late) twice
	// before a lease expires; expired leases are looked for as often.
	every := max(c.st.Config().LeaseTTL/4, 50*time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(5)
	go func() {
		defer wg.Done()
		c.listen(modeCtx)
	}()
	go func() {
		defer wg.Done()
		c.listenCancels(modeCtx)
	}()
	go func() {
		defer wg.Done()
		c.publishLive(modeCtx)
	}()
	go func() {
		defer wg.Done()
		c.every(ctx, every, c.renew)
	}()
	go func() {
		defer wg.Done()
		// At once, then periodically: a dispatcher that starts takes back at once what a
		// dead one left, and starts the store's recovery clock (its outage guard).
		c.recover(modeCtx)
		c.every(modeCtx, every, c.recover)
	}()
	c.write(ctx)
	wg.Wait()
	return nil
}

func (c *core) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := c.st.ListenTasks(ctx, c.wake)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("listening for new tasks failed; retrying", "err", err)
		sleep(ctx, time.Second)
	}
}

func (c *core) every(ctx context.Context, d time.Duration, f func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}

func (c *core) renew(ctx context.Context) {
	c.mu.Lock()
	refs := make([]task.Ref, 0, len(c.held))
	for id, h := range c.held {
		refs = append(refs, task.Ref{ID: id, Attempt: h.attempt})
	}
	c.mu.Unlock()
	if len(refs) == 0 {
		return
	}
	lost, err := c.st.Renew(ctx, refs)
	if err != nil && ctx.Err() == nil {
		c.log.Warn("renewing leases failed", "tasks", len(refs), "err", err)
	}
	if len(lost) > 0 {
		// No longer RUNNING at our attempt (cancelled, or taken back after its lease ran
		// out): its outcome would be ignored, so its slot is better freed now. This also
		// makes up for a cancel message lost with the subscription.
		attempts := make(map[string]int, len(lost))
		for _, r := range refs {
			attempts[r.ID] = r.Attempt
		}
		c.stopHeld(lost, attempts)
	}
}

func (c *core) recover(ctx context.Context) {
	n, err := c.st.RecoverExpired(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		c.log.Warn("recovering expired leases failed", "err", err)
	case n > 0:
		c.log.Info("recovered tasks whose lease expired", "tasks", n)
		c.signalWake()
	}
}

// write is the single writer of outcomes and hand-backs. It batches whatever is waiting,
// retries with backoff while Redis is unreachable, and after ctx ends writes what is left.
// If Redis stays unreachable past shutdown, the tasks keep their (expiring) leases and
// another dispatcher recovers them: nothing is lost, at worst it runs again.
func (c *core) write(ctx context.Context) {
	batch := make([]op, 0, writeBatch)
	for {
		batch = batch[:0]
		select {
		case o := <-c.ops:
			batch = append(batch, o)
		case <-ctx.Done():
			// Take what modes handed over before they returned.
			for {
				select {
				case o := <-c.ops:
					batch = append(batch, o)
					if len(batch) == writeBatch {
						c.flush(ctx, batch, true)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				c.flush(ctx, batch, true)
			}
			return
		}
	fill:
		for len(batch) < writeBatch {
			select {
			case o := <-c.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		c.flush(ctx, batch, false)
	}
}

// flush writes one batch, retrying until it lands; when stopping, it gives up after a few
// seconds rather than hang shutdown.
func (c *core) flush(ctx context.Context, batch []op, stopping bool) {
	var outcomes []task.Outcome
	var via []string
	var lost, released []task.Ref
	var sent []store.SentTo
	for _, o := range batch {
		switch o.kind {
		case opSent:
			sent = append(sent, *o.sent)
		case opFinish:
			outcomes = append(outcomes, o.outcome)
			via = append(via, o.via)
		case opLost:
			lost = append(lost, o.ref)
		case opRelease:
			released = append(released, o.ref)
		}
	}
	wctx := context.WithoutCancel(ctx)
	deadline := time.Now().Add(5 * time.Second)
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := c.apply(wctx, sent, outcomes, via, lost, released)
		if err == nil {
			break
		}
		if (stopping || ctx.Err() != nil) && time.Now().After(deadline) {
			c.log.Error("giving up writing outcomes at shutdown; their leases will expire and the tasks run again",
				"tasks", len(batch), "err", err)
			break
		}
		if attempt == 0 || errors.Is(err, store.ErrUnavailable) && attempt%20 == 0 {
			c.log.Warn("writing outcomes failed; retrying", "tasks", len(batch), "err", err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, time.Second)
	}
	c.mu.Lock()
	for _, o := range batch {
		if c.held[o.ref.ID].attempt == o.ref.Attempt {
			delete(c.held, o.ref.ID)
		}
	}
	c.mu.Unlock()
}

func (c *core) apply(ctx context.Context, sent []store.SentTo, outcomes []task.Outcome, via []string, lost, released []task.Ref) error {
	// Sent first: an outcome in the same batch must find its connection recorded.
	if len(sent) > 0 {
		if err := c.st.Sent(ctx, sent); err != nil {
			return err
		}
	}
	if len(outcomes) > 0 {
		if _, err := c.st.CompleteFrom(ctx, outcomes, via); err != nil {
			return err
		}
	}
	if len(lost) > 0 {
		_, failed, err := c.st.Requeue(ctx, lost, "worker lost")
		if err != nil {
			return err
		}
		// Out of attempts: ended here, as FAILED worker_lost. A retry of this batch counts
		// none twice: the store applies a re-queue once per attempt.
		c.m.finished.WithLabelValues(string(task.Failed), string(task.KindWorkerLost)).Add(float64(failed))
		c.signalWake()
	}
	if len(released) > 0 {
		if err := c.st.Release(ctx, released); err != nil {
			return err
		}
		c.signalWake()
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
