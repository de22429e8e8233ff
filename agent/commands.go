package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/uplink"
)

// Command runs one remote command. Every uplink and the hub's V3 endpoint
// call this one implementation. Unknown commands fail with an error that
// wraps command.ErrUnknownCommand, malformed arguments with command.ErrBadArgs.
//
//	ping                                      -> {"pong": true, "time": ...}
//	read_now     {"device_id": 1}             -> the record of a fresh read
//	set_interval {"device_id": 1, "interval": "10s"} -> {"device_id", "interval"}
//	status                                    -> devices and system status
//	chat_post    {"chat_id": 1, "user": "control room", "message": "..."} -> the message
//	ack_alert    {"alert_id": 12, "user": "alice", "note": "..."} -> the acknowledgement
func (a *Agent) Command(ctx context.Context, name string, args json.RawMessage) (any, error) {
	switch name {
	case command.Ping:
		if err := noArgs(args); err != nil {
			return nil, err
		}
		return map[string]any{"pong": true, "time": a.now().UTC().Format(time.RFC3339Nano), "gateway_id": a.cfg.GatewayID}, nil
	case command.Status:
		if err := noArgs(args); err != nil {
			return nil, err
		}
		return a.statusReport(), nil
	case command.ChatPost:
		return a.chatPost(ctx, args)
	case command.ReadNow:
		var p struct {
			DeviceID *int `json:"device_id"`
		}
		if err := strictArgs(args, &p); err != nil {
			return nil, err
		}
		d, err := a.deviceArg(p.DeviceID)
		if err != nil {
			return nil, err
		}
		reply := make(chan readResult, 1)
		select {
		case d.readNow <- reply:
		case <-ctx.Done():
			return nil, fmt.Errorf("read_now: device %d is busy: %w", d.cfg.ID, ctx.Err())
		case <-d.done:
			return nil, fmt.Errorf("read_now: device %d was reconfigured; ask again", d.cfg.ID)
		}
		select {
		case r := <-reply:
			if r.err != nil {
				return nil, fmt.Errorf("read_now: device %d: %w", d.cfg.ID, r.err)
			}
			// The same JSON as the uplinks send (docs/mqtt.md).
			return json.RawMessage(uplink.AppendRecord(nil, &r.rec)), nil
		case <-ctx.Done():
			return nil, fmt.Errorf("read_now: device %d: %w", d.cfg.ID, ctx.Err())
		}
	case command.AckAlert:
		return a.ackCommand(ctx, args)
	case command.SetInterval:
		var p struct {
			DeviceID *int            `json:"device_id"`
			Interval json.RawMessage `json:"interval"`
		}
		if err := strictArgs(args, &p); err != nil {
			return nil, err
		}
		d, err := a.deviceArg(p.DeviceID)
		if err != nil {
			return nil, err
		}
		iv, err := parseInterval(p.Interval)
		if err != nil {
			return nil, err
		}
		d.interval.Store(int64(iv))
		select {
		case d.wake <- struct{}{}:
		default:
		}
		a.log.Info("device interval changed by command", "device_id", d.cfg.ID, "interval", iv)
		return map[string]any{"device_id": d.cfg.ID, "interval": iv.String()}, nil
	}
	return nil, fmt.Errorf("%w: %q (known: ping, read_now, set_interval, status, chat_post, ack_alert)", command.ErrUnknownCommand, name)
}

func noArgs(args json.RawMessage) error {
	var m map[string]json.RawMessage
	if err := strictArgs(args, &m); err != nil {
		return err
	}
	if len(m) > 0 {
		return fmt.Errorf("%w: this command takes no arguments", command.ErrBadArgs)
	}
	return nil
}

// strictArgs decodes a JSON object, refusing unknown fields; empty args
// decode as {}.
func strictArgs(args json.RawMessage, v any) error {
	args = bytes.TrimSpace(args)
	if len(args) == 0 || bytes.Equal(args, []byte("null")) {
		args = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", command.ErrBadArgs, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the arguments", command.ErrBadArgs)
	}
	return nil
}

func (a *Agent) deviceArg(id *int) (*device, error) {
	if id == nil {
		return nil, fmt.Errorf("%w: device_id is required", command.ErrBadArgs)
	}
	a.viewMu.Lock()
	d := a.devices[*id]
	a.viewMu.Unlock()
	if d == nil {
		return nil, fmt.Errorf("%w: no device has device_id %d", command.ErrBadArgs, *id)
	}
	return d, nil
}

// parseInterval takes "10s" or a number of seconds.
func parseInterval(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 {
		return 0, fmt.Errorf("%w: interval is required (e.g. \"10s\" or 10)", command.ErrBadArgs)
	}
	var d time.Duration
	var s string
	var secs float64
	switch {
	case json.Unmarshal(raw, &s) == nil:
		v, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%w: interval %q: %v", command.ErrBadArgs, s, err)
		}
		d = v
	case json.Unmarshal(raw, &secs) == nil:
		d = time.Duration(secs * float64(time.Second))
	default:
		return 0, fmt.Errorf("%w: interval must be a duration string or seconds", command.ErrBadArgs)
	}
	if d < 100*time.Millisecond || d > 24*time.Hour {
		return 0, fmt.Errorf("%w: interval %v: want 100ms to 24h", command.ErrBadArgs, d)
	}
	return d, nil
}
