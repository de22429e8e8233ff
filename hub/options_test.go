package hub

import (
	"errors"
	"testing"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/hub/wsconn"
)

// New and NewV3 refuse bad options with exactly Validate's error, naming
// the field, so that the agent's config check (which runs Validate) finds
// every value they would refuse.
func TestNewRunsValidate(t *testing.T) {
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		o     Options
		field string
	}{
		{Options{MaxBatch: -1}, "MaxBatch"}, {Options{ReplayBuffer: -1}, "ReplayBuffer"},
		{Options{CommitWait: -1}, "CommitWait"}, {Options{InboxLen: -1}, "InboxLen"},
		{Options{Conn: wsconn.Options{QueueLen: -1}}, "QueueLen"},
	} {
		verr := c.o.Validate()
		c.o.Verifier = v
		_, err := New(c.o)
		var he *FieldError
		var ce *wsconn.FieldError
		named := (errors.As(err, &he) && he.Field == c.field) || (errors.As(err, &ce) && ce.Field == c.field)
		if !named || verr == nil || verr.Error() != err.Error() {
			t.Errorf("New(%+v): %v; Validate: %v; want a field error on %s from both", c.o, err, verr, c.field)
		}
	}
	if _, err := New(Options{}); !errors.Is(err, ErrNoVerifier) {
		t.Errorf("New without a Verifier: %v", err)
	}
	h, err := New(Options{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		o     V3Options
		field string
	}{
		{V3Options{GatewayID: "a b"}, "GatewayID"}, {V3Options{Group: "x/y"}, "Group"},
		{V3Options{HeartbeatInterval: -1}, "HeartbeatInterval"}, {V3Options{CommandTimeout: -1}, "CommandTimeout"},
		{V3Options{CommandQueue: -1}, "CommandQueue"},
	} {
		verr := c.o.Validate()
		_, err := NewV3(h, c.o)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, ErrOptions) || verr == nil || verr.Error() != err.Error() {
			t.Errorf("NewV3(%+v): %v; Validate: %v; want a *FieldError on %s from both", c.o, err, verr, c.field)
		}
	}
}
