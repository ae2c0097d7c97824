package dispatch

// STUB: the remote-modes engineer replaces this file with pull.go and push.go.

import (
	"context"
	"fmt"
	"log/slog"
)

func runPull(ctx context.Context, c *core, cfg Config, log *slog.Logger) error {
	return fmt.Errorf("%w: pull mode is not built yet", ErrBadConfig)
}

func runPush(ctx context.Context, c *core, cfg Config, log *slog.Logger) error {
	return fmt.Errorf("%w: push mode is not built yet", ErrBadConfig)
}
