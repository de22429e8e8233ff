package command

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestErrorCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: %q", ErrUnknownCommand, "reboot"), CodeUnknownCommand},
		{fmt.Errorf("%w: device_id is required", ErrBadArgs), CodeBadArgs},
		{fmt.Errorf("outer: %w", fmt.Errorf("%w: twice wrapped", ErrBadArgs)), CodeBadArgs},
		{errors.New("sensor not answering"), CodeFailed},
		{context.DeadlineExceeded, CodeFailed},
		{fmt.Errorf("%w: 12", ErrUnknownAlert), CodeUnknownAlert},
		{fmt.Errorf("%w: 12", ErrAlertCleared), CodeAlertCleared},
		{fmt.Errorf("%w: 12", ErrAlreadyAcknowledged), CodeAlreadyAcknowledged},
		{fmt.Errorf("%w: %w: 600 bytes", ErrBadArgs, ErrNoteTooLong), CodeNoteTooLong},
	} {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
