package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"faas/client"
)

// Ctrl-C in 'faas batch': the first interrupt stops submitting and waiting, and the batch
// cancels the tasks it submitted that have not finished (saying so first); a second one
// leaves them and exits at once.

// sameInterrupt is how soon after the first interrupt a signal counts as that same one (it
// reaches the batch's channel and the command's context separately).
const sameInterrupt = 100 * time.Millisecond

// afterInterrupt returns a context for what must outlive the first interrupt (ctx ending):
// the submissions in flight, whose tasks must be known to be cancelled, and the cancels. It
// ends at the next SIGINT or SIGTERM, or when stop is called.
func afterInterrupt(ctx context.Context) (hard context.Context, stop func()) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer signal.Stop(ch)
		select {
		case <-ctx.Done():
		case <-hard.Done():
			return
		}
		first := time.Now()
		for {
			select {
			case <-ch:
				if time.Since(first) < sameInterrupt {
					first = time.Time{} // only one signal may be the first one
					continue
				}
				cancel()
				return
			case <-hard.Done():
				return
			}
		}
	}()
	return hard, cancel
}

// cancelUnfinished cancels ids (the batch's unfinished tasks) in chunks, reporting on
// stderr, and returns the exit status of an interrupted batch (130).
func (e *env) cancelUnfinished(hard context.Context, c *client.Client, ids []string) error {
	fmt.Fprintf(e.stderr, "faas batch: interrupted; cancelling the %d unfinished tasks it submitted (Ctrl-C again to leave them)\n", len(ids))
	cancelled, ended, other := 0, 0, 0
	var err error
	left := ids
	for len(left) > 0 && err == nil {
		chunk := left[:min(len(left), client.MaxCancel)]
		var got []client.Cancelled
		got, err = c.CancelMany(hard, chunk)
		for _, r := range got {
			switch {
			case r.Err == nil:
				cancelled++
			case r.Err.Code == "conflict":
				ended++ // it finished before the cancel reached it
			default:
				other++
			}
		}
		left = left[len(got):]
	}
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(e.stderr, "faas batch: interrupted again; left %d tasks as they are (cancelled %d)\n", len(left), cancelled)
	case err != nil:
		fmt.Fprintf(e.stderr, "faas batch: cancelling failed after %d tasks, %d left as they are: %v\n", cancelled, len(left), err)
	default:
		fmt.Fprintf(e.stderr, "faas batch: cancelled %d tasks; %d had finished already", cancelled, ended)
		if other > 0 {
			fmt.Fprintf(e.stderr, "; %d were not found", other)
		}
		fmt.Fprintln(e.stderr)
	}
	return silent(ExitInterrupted)
}
