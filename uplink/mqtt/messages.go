package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/uplink"
	"github.com/floorhub/floorhub/uplink/mqtt/mqttwire"
)

// Status is the retained payload on <prefix>/<gateway_id>/status: the
// birth message (state "online") and the last will or shutdown message
// (state "offline").
type Status struct {
	State       string `json:"state"` // "online" or "offline"
	GatewayID   string `json:"gateway_id"`
	BootID      string `json:"boot_id"`          // the kernel's boot id
	RunID       string `json:"run_id,omitempty"` // this start of the agent
	Version     string `json:"version,omitempty"`
	TS          string `json:"ts"`               // RFC 3339; when the message was made
	Reason      string `json:"reason,omitempty"` // offline: "shutdown" or "connection lost"
	ClockSynced bool   `json:"clock_synced"`
	// MonoOffsetNS is wall clock minus mono_ns for this boot, once the
	// clock is synced: records of BootID sent with clock_synced false date
	// as ts = mono_ns + mono_offset_ns. Absent before the sync.
	MonoOffsetNS *int64 `json:"mono_offset_ns,omitempty"`
	// SkippedSeq lists the seq ranges (inclusive) that were reserved but
	// never stored because the agent died (oldest first, at most 100):
	// receivers count them as present when checking for gaps. Always
	// present; [] when nothing was skipped.
	SkippedSeq [][2]uint64 `json:"skipped_seq"`
}

func (u *Uplink) statusPayload(state, reason string) []byte {
	skipped := u.src.Skipped()
	if skipped == nil {
		skipped = [][2]uint64{} // present and empty: nothing skipped
	}
	synced, off := uplink.ClockFields(u.o.Clock)
	b, _ := json.Marshal(Status{ // cannot fail: plain fields
		State:        state,
		GatewayID:    u.o.GatewayID,
		BootID:       u.o.BootID,
		RunID:        u.o.RunID,
		Version:      u.o.Version,
		TS:           time.Now().UTC().Format(time.RFC3339Nano),
		Reason:       reason,
		ClockSynced:  synced,
		MonoOffsetNS: off,
		SkippedSeq:   skipped,
	})
	return b
}

// Heartbeat is the payload on <prefix>/<gateway_id>/heartbeat.
type Heartbeat struct {
	GatewayID string  `json:"gateway_id"`
	BootID    string  `json:"boot_id"`
	RunID     string  `json:"run_id,omitempty"`
	TS        string  `json:"ts"`       // RFC 3339
	UptimeS   float64 `json:"uptime_s"` // seconds since the uplink started
	// Backlog counts the stored records after AckedSeq; OldestUnsentAgeS
	// is the age in seconds of the oldest of them (0 when none).
	Backlog          int     `json:"backlog"`
	OldestUnsentAgeS float64 `json:"oldest_unsent_age_s"`
	LastSeq          uint64  `json:"last_seq"`  // highest seq assigned by the store
	AckedSeq         uint64  `json:"acked_seq"` // every record up to here is acknowledged
	// AckedEventsSeq and AckedTelemetrySeq are the two cursors.
	AckedEventsSeq    uint64 `json:"acked_events_seq"`
	AckedTelemetrySeq uint64 `json:"acked_telemetry_seq"`
	Evictions         uint64 `json:"evictions"` // records evicted unsent or sent, since the store was made
	ClockSynced       bool   `json:"clock_synced"`
	// MonoOffsetNS: see Status.
	MonoOffsetNS *int64 `json:"mono_offset_ns,omitempty"`
}

func (u *Uplink) heartbeat() Heartbeat {
	ev, tel := u.events.Acked(), u.telemetry.Acked()
	acked := min(ev, tel)
	st := u.src.Stats()
	synced, off := uplink.ClockFields(u.o.Clock)
	h := Heartbeat{
		GatewayID:         u.o.GatewayID,
		BootID:            u.o.BootID,
		RunID:             u.o.RunID,
		TS:                time.Now().UTC().Format(time.RFC3339Nano),
		UptimeS:           time.Since(u.started).Seconds(),
		LastSeq:           st.LastSeq,
		AckedSeq:          acked,
		AckedEventsSeq:    ev,
		AckedTelemetrySeq: tel,
		Evictions:         st.Evicted,
		ClockSynced:       synced,
		MonoOffsetNS:      off,
	}
	n, oldest, err := u.src.Backlog(acked)
	if err != nil {
		u.log.Debug("mqtt: heartbeat: backlog unknown", "err", err)
		h.Backlog = -1 // documented: unknown
	} else {
		h.Backlog = n
		if !oldest.IsZero() {
			h.OldestUnsentAgeS = max(0, time.Since(oldest).Seconds())
		}
	}
	return h
}

// heartbeats publishes a heartbeat at once and then every
// HeartbeatInterval, until ctx ends.
func (u *Uplink) heartbeats(ctx context.Context, c *mqttwire.Conn) {
	t := time.NewTicker(u.o.HeartbeatInterval)
	defer t.Stop()
	for {
		b, _ := json.Marshal(u.heartbeat())
		// QoS 1 without waiting: a lost heartbeat is replaced by the next.
		c.Publish(ctx, u.topic.heartbeat, 1, false, b)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// CommandResult is the payload on <prefix>/<gateway_id>/cmd_result.
type CommandResult struct {
	RequestID json.RawMessage `json:"request_id,omitempty"`
	Cmd       string          `json:"cmd"` // the command's name, from the topic
	OK        bool            `json:"ok"`
	Result    any             `json:"result,omitempty"`
	// Error is "malformed", "unknown_command", "bad_args", "failed",
	// "refused" or "busy"; Message says why in words.
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
	TS      string `json:"ts"`
}

// commands runs the commands received on this connection, one at a time,
// and publishes their results, until ctx ends.
func (u *Uplink) commands(ctx context.Context, c *mqttwire.Conn, in <-chan mqttwire.Message) {
	for {
		select {
		case m := <-in:
			u.publishResult(ctx, c, u.runCommand(ctx, m))
		case <-ctx.Done():
			return
		}
	}
}

// refuseBusy answers the commands that found the queue full, so that even
// those get a result, until ctx ends.
func (u *Uplink) refuseBusy(ctx context.Context, c *mqttwire.Conn, in <-chan mqttwire.Message) {
	for {
		select {
		case m := <-in:
			res := CommandResult{Cmd: strings.TrimPrefix(m.Topic, u.topic.cmd), Error: "busy",
				Message: "too many commands waiting; try again later"}
			if _, id, err := decodeCommand(m.Payload); err == nil {
				res.RequestID = id
			}
			u.publishResult(ctx, c, res)
		case <-ctx.Done():
			return
		}
	}
}

func (u *Uplink) publishResult(ctx context.Context, c *mqttwire.Conn, res CommandResult) {
	res.TS = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(res)
	if err != nil {
		b, _ = json.Marshal(CommandResult{RequestID: res.RequestID, Cmd: res.Cmd,
			Error: "failed", Message: "result not encodable as JSON: " + err.Error(), TS: res.TS})
	}
	// Not waited for: a result lost with the connection is lost, like
	// the command's sender would lose it; it may send again.
	c.Publish(ctx, u.topic.cmdResult, 1, false, b)
}

// decodeCommand splits a command payload into the arguments for the
// Commander and the request_id. The payload is the argument object itself,
// as on the Aether uplink: {"device_id": 1}, with an optional "request_id"
// (any JSON value) that is echoed in the result and not passed on. An empty
// payload means no arguments.
func decodeCommand(payload []byte) (args, requestID json.RawMessage, err error) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil, nil, nil
	}
	var fields map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(payload))
	if err := d.Decode(&fields); err != nil {
		return nil, nil, err
	}
	if fields == nil {
		return nil, nil, errors.New("null is not an object")
	}
	if d.More() {
		return nil, nil, errors.New("trailing data after the JSON object")
	}
	requestID = fields["request_id"]
	delete(fields, "request_id")
	if len(fields) > 0 {
		args, _ = json.Marshal(fields) // raw values re-encoded: cannot fail
	}
	return args, requestID, nil
}

// maxPacket is the largest packet the uplink reads from the broker, in
// bytes.
const maxPacket = 1 << 20

// runCommand decodes and runs one command.
func (u *Uplink) runCommand(ctx context.Context, m mqttwire.Message) (res CommandResult) {
	res.Cmd = strings.TrimPrefix(m.Topic, u.topic.cmd)
	fail := func(code, format string, args ...any) CommandResult {
		res.OK, res.Error, res.Message = false, code, fmt.Sprintf(format, args...)
		if ok, n := u.refusedCmdLog.allow(time.Now()); ok {
			u.log.Info("mqtt: command refused", "cmd", res.Cmd, "error", code, "message", res.Message, "suppressed", n)
		}
		return res
	}
	if m.Skipped > 0 {
		// Its payload was not read: run with none, it would run without
		// the arguments it was sent with.
		return fail("malformed", "the command's payload of %d bytes is over the connection's packet limit (%d bytes)", m.Skipped, maxPacket)
	}
	args, id, err := decodeCommand(m.Payload)
	if err != nil {
		return fail("malformed", "payload must be a JSON object of arguments (optionally with request_id): %v", err)
	}
	res.RequestID = id
	if m.Retained {
		// A retained command would run again on every reconnect.
		return fail("refused", "retained commands are not run; publish commands with retain=false")
	}
	if u.cmd == nil {
		return fail(command.CodeUnknownCommand, "this gateway runs no commands")
	}
	cctx, cancel := context.WithTimeout(ctx, u.o.CommandTimeout)
	defer cancel()
	out, err := u.call(cctx, strings.ToLower(res.Cmd), args)
	if err != nil {
		return fail(command.ErrorCode(err), "%v", err)
	}
	res.OK, res.Result = true, out
	return res
}

// call runs the Commander, turning a panic into an error: a bad command
// must not take the gateway down.
func (u *Uplink) call(ctx context.Context, name string, args json.RawMessage) (out any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("mqtt: command %q panicked: %v", name, p)
		}
	}()
	return u.cmd.Command(ctx, name, args)
}
