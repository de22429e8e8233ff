package sensors

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	if err := Wait(context.Background(), 0); err != nil {
		t.Fatalf("Wait(0): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// An hour's conversion time does not outlive the context.
	if err := Wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v, want context.Canceled", err)
	}
}
