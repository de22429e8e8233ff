package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/store"
)

// defaultAckCommitTimeout bounds the wait for an acknowledgement's commit
// (Agent.ackCommitTimeout): a commit is milliseconds; a disk that takes
// longer is failing, and the requester gets an error instead.
const defaultAckCommitTimeout = 10 * time.Second

// AckAlert acknowledges the active alert id for user (hub.AlertAcker: the
// hub passes the connection's user). It stores an alert_ack record, waits
// for its commit, and only then marks the alert in the active list (which
// the hub's alerts snapshot shows) and publishes the record: an
// acknowledgement answered or shown is one a power cut keeps, and one
// that failed to commit is neither. The commit does not depend on ctx
// (the requester's connection may close meanwhile); it is bounded by
// ackCommitTimeout. Refusals wrap the command package's sentinels.
func (a *Agent) AckAlert(ctx context.Context, id uint64, user, note string) (store.Record, error) {
	// Every transport decodes JSON, whose strings are valid UTF-8.
	switch {
	case id == 0 || user == "" || len(user) > command.MaxAckUser:
		return store.Record{}, fmt.Errorf("%w: want alert_id (a positive number) and user (1 to 64 bytes)", command.ErrBadArgs)
	case len(note) > command.MaxAckNote:
		return store.Record{}, fmt.Errorf("%w: %w: the note has %d bytes, at most 500", command.ErrBadArgs, command.ErrNoteTooLong, len(note))
	}
	// Under a.mu, like the rules, until the record is shown: an alert
	// cannot clear between the check and the append, a second
	// acknowledgement waits for the first's outcome, and records are
	// published in the order of the decisions. The agent's other events
	// wait for this one commit; acknowledgements are rare.
	a.mu.Lock()
	defer a.mu.Unlock()
	a.viewMu.Lock()
	raised, ok := a.alerts[id]
	a.viewMu.Unlock()
	if !ok {
		return store.Record{}, a.notActive(id)
	}
	if k := raised.Ack; k != nil {
		return store.Record{}, fmt.Errorf("%w: alert %d was acknowledged by %s at %v", command.ErrAlreadyAcknowledged, id, k.By, k.At)
	}
	al := *raised.Alert
	al.ID = id
	rec, err := a.store.Append(a.stamp(store.Record{Kind: store.KindAlertAck, DeviceID: raised.DeviceID, Alert: &al,
		Ack: &store.AlertAck{By: user, Note: note, Raised: raised.TS}}))
	if err != nil {
		a.log.Error("storing an alert acknowledgement failed", "alert_id", id, "err", err)
		return store.Record{}, fmt.Errorf("storing the acknowledgement of alert %d: %w", id, err)
	}
	timeout := a.ackCommitTimeout
	if timeout <= 0 {
		timeout = defaultAckCommitTimeout
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := a.store.Flush(cctx); err != nil {
		// Not shown, so a retry is not refused as already acknowledged.
		// The record stays queued: if the disk recovers it is committed
		// and shows after a restart.
		a.log.Error("committing an alert acknowledgement failed; not shown", "alert_id", id, "seq", rec.Seq, "err", err)
		return store.Record{}, fmt.Errorf("the acknowledgement of alert %d (seq %d) is not committed: %w", id, rec.Seq, err)
	}
	a.show(rec)
	a.log.Info("alert acknowledged", "alert_id", id, "by", user, "seq", rec.Seq)
	return rec, nil
}

// notActive tells why id is not in the active list: its raising record is
// stored (so it was cleared), or no such alert is known.
func (a *Agent) notActive(id uint64) error {
	recs, err := a.store.Read(id-1, 1, store.KindAlert)
	if err == nil && len(recs) == 1 && recs[0].Seq == id && recs[0].Alert != nil && recs[0].Alert.State == store.AlertActive {
		return fmt.Errorf("%w: alert %d is no longer active", command.ErrAlertCleared, id)
	}
	return fmt.Errorf("%w: no alert %d (alert_id is the seq of the alert's raising record)", command.ErrUnknownAlert, id)
}

// ackResult is the answer to ack_alert, on every transport.
type ackResult struct {
	AlertID        uint64 `json:"alert_id"`
	AcknowledgedBy string `json:"acknowledged_by"`
	AcknowledgedAt string `json:"acknowledged_at"`
	Note           string `json:"note"`
	Seq            uint64 `json:"seq"`
}

// ackCommand runs ack_alert from the center: {"alert_id", "user", "note"}.
func (a *Agent) ackCommand(ctx context.Context, args json.RawMessage) (any, error) {
	var p struct {
		AlertID uint64 `json:"alert_id"` // 0 when missing: refused
		User    string `json:"user"`
		Note    string `json:"note"`
	}
	if err := strictArgs(args, &p); err != nil {
		return nil, err
	}
	r, err := a.AckAlert(ctx, p.AlertID, p.User, p.Note)
	if err != nil {
		return nil, err
	}
	return ackResult{AlertID: r.Alert.ID, AcknowledgedBy: r.Ack.By, AcknowledgedAt: r.TS.UTC().Format(time.RFC3339Nano),
		Note: r.Ack.Note, Seq: r.Seq}, nil
}
