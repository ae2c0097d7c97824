package worker

// This file: saying so when no dispatcher answers. ZeroMQ connects lazily and reconnects
// silently, so a worker pointed at a dead or wrong endpoint would otherwise log "worker
// started" and then nothing.

import (
	"errors"
	"fmt"
	"time"

	"faas/internal/zsock"
)

// ErrNoDispatcher is returned by Run when no dispatcher answered within
// Config.ConnectTimeout.
var ErrNoDispatcher = errors.New("no dispatcher answered")

// The first "no answer" warning comes after noAnswerFirst of silence, the next
// noAnswerGap later, each gap twice the last, up to noAnswerMaxGap.
const (
	noAnswerFirst  = 5 * time.Second
	noAnswerGap    = 10 * time.Second
	noAnswerMaxGap = 5 * time.Minute
)

// checkAnswered warns, then gives up (ConnectTimeout), while the dispatcher has not
// acknowledged the registration. The loop calls it at least once a second.
func (w *worker) checkAnswered(now time.Time) {
	if w.registered || w.stopping {
		w.unanswered = time.Time{}
		return
	}
	if w.unanswered.IsZero() {
		w.unanswered, w.warnAt, w.warnGap = now, noAnswerFirst, noAnswerGap
		return
	}
	silent := now.Sub(w.unanswered)
	if t := w.cfg.ConnectTimeout; t > 0 && silent >= t && w.fatal == nil {
		w.fatal = fmt.Errorf("%w at %s within --connect-timeout %v: is a dispatcher of %s mode running there, and reachable?",
			ErrNoDispatcher, w.cfg.Endpoint, t, w.cfg.Mode)
		w.log.Error("giving up: no dispatcher answered", "endpoint", w.cfg.Endpoint, "waited", silent.Round(time.Millisecond))
		return
	}
	if silent >= w.warnAt {
		w.log.Warn("no answer from the dispatcher yet; still trying (is it running, in "+string(w.cfg.Mode)+" mode, and reachable?)",
			"endpoint", w.cfg.Endpoint, "waited", silent.Round(time.Second))
		w.warnAt += w.warnGap
		w.warnGap = min(2*w.warnGap, noAnswerMaxGap)
	}
}

// untilGiveUp is max, or less when ConnectTimeout runs out sooner: the loop then wakes in
// time to give up when it said it would.
func (w *worker) untilGiveUp(max time.Duration) time.Duration {
	if w.cfg.ConnectTimeout <= 0 || w.unanswered.IsZero() {
		return max
	}
	// Never negative (Until): a negative timeout makes a ZeroMQ poll wait for ever.
	return zsock.Until(w.unanswered.Add(w.cfg.ConnectTimeout), max)
}
