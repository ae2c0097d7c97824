package cli

import (
	"context"
	"fmt"
	"sync"
	"time"

	"faas/client"
)

// waitHintAfter is how long a wait goes on before the server is asked whether any
// dispatcher is alive: without one, a task waits for ever, and saying so beats silence.
const waitHintAfter = 3 * time.Second

// waitTaskHinted is waitTask that, once the wait has lasted waitHintAfter, prints on stderr
// the server's reason when its /healthz is "degraded" (no dispatcher alive).
func (e *env) waitTaskHinted(ctx context.Context, c *client.Client, id string, limit time.Duration) (client.Task, error) {
	var mu sync.Mutex
	waiting := true
	hctx, cancel := context.WithCancel(ctx)
	t := time.AfterFunc(waitHintAfter, func() {
		h, err := c.HealthStatus(hctx)
		if err != nil || h.Status != "degraded" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if waiting {
			fmt.Fprintf(e.stderr, "faas: still waiting for task %s: the server says %s\n", id, h.Reason)
		}
	})
	defer func() {
		t.Stop()
		cancel()
		mu.Lock()
		waiting = false
		mu.Unlock()
	}()
	return waitTask(ctx, c, id, limit)
}
