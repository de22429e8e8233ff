package sensors

import (
	"context"
	"time"
)

// Wait waits d, the time a chip takes to convert, or returns ctx's error
// once ctx ends first: a conversion time is no reason to hold a read past
// its timeout or the agent's shutdown.
func Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
