package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/floorhub/floorhub/sensors"
	"github.com/floorhub/floorhub/store"
)

// Sensor is what the agent reads. Drivers that hold resources also
// implement io.Closer.
type Sensor interface {
	Read(ctx context.Context) ([]sensors.Reading, error)
}

// changeNotifier is implemented by drivers that learn of a change between
// reads (a GPIO input edge): the agent reads them at once.
type changeNotifier interface {
	Changes() <-chan struct{}
}

// device is one configured device and its read loop's state.
type device struct {
	cfg    DeviceConfig
	sensor Sensor

	interval atomic.Int64 // nanoseconds; set_interval changes it
	wake     chan struct{}
	readNow  chan chan readResult
	cancel   context.CancelFunc // stops the read loop (startDevice)
	done     chan struct{}      // closed when the read loop has exited

	// Guarded by Agent.mu; status, reason and lastSeen are written under
	// Agent.viewMu too (snapshot reads them under that alone).
	status   string
	reason   string
	lastSeen time.Time
	// units maps each metric read to its unit; replaced, never modified,
	// when a read brings a new one (the hub holds on to it).
	units    map[string]string
	failures int
	good     time.Duration // running time of the last good read or the start (offline.go)
	lastErr  string
	logged   time.Time // last failure log line, for rate limiting
	muted    int       // failures not logged since then
	// A flaky device leaves online and comes back again and again: its
	// status changes are all stored, but an episode away from online is
	// logged (each change in it, with its offline alert) at most once a
	// minute; one left out is left out whole, so the journal's last line
	// on a device still says its status, unless it lasts a minute: then
	// checkOffline logs it (device still not online) and the rest of it.
	flapLogged time.Time // last episode logged
	flapMuted  int       // episodes not logged since then
	awayMuted  bool      // the current episode is not logged
}

type readResult struct {
	rec store.Record
	err error
}

func newDevice(cfg DeviceConfig, s Sensor) *device {
	d := &device{cfg: cfg, sensor: s, wake: make(chan struct{}, 1), readNow: make(chan chan readResult), done: make(chan struct{})}
	d.interval.Store(int64(cfg.Interval))
	return d
}

// makeDevice builds a configured device on its driver, built at first use.
func (a *Agent) makeDevice(dc DeviceConfig) *device {
	return newDevice(dc, &lazySensor{spec: dc.Spec(0), hw: a.opts.Hardware, last: a.lastReadings(dc.ID),
		log: a.log.With("device_id", dc.ID, "name", dc.Name)})
}

// startDevice starts d's read loop under Run's device context. Called from
// Run's goroutine only (it owns devWG).
func (a *Agent) startDevice(d *device) {
	ctx, cancel := context.WithCancel(a.devCtx)
	d.cancel = cancel
	a.devWG.Add(1)
	go func() {
		defer a.devWG.Done()
		defer close(d.done)
		a.runDevice(ctx, d)
	}()
}

// stopDevice stops d's read loop and waits for it.
func (a *Agent) stopDevice(d *device) {
	d.cancel()
	<-d.done
}

func (d *device) close() error {
	if c, ok := d.sensor.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// runDevice reads one device on its own schedule until ctx ends. A slow or
// failing device only ever delays itself.
func (a *Agent) runDevice(ctx context.Context, d *device) {
	var changes <-chan struct{}
	cn, notifies := d.sensor.(changeNotifier)
	if notifies {
		changes = cn.Changes()
	}
	rng := rand.New(rand.NewPCG(uint64(d.cfg.ID), uint64(a.now().UnixNano())))
	retry := time.Duration(0) // 0: healthy; else the current retry delay
	jitter := func() time.Duration {
		// Capped by the interval, which set_interval may have shortened.
		if j := min(*d.cfg.Jitter, time.Duration(d.interval.Load())); j > 0 {
			return time.Duration(rng.Int64N(int64(j) + 1))
		}
		return 0
	}
	// The first read is at once, or within the jitter (devices on one
	// Modbus line must not all start together; a device added by a reload
	// shows a value at once too); the next ones are on the schedule. lag is
	// the jitter of the read the timer is armed for: the read's end minus
	// it is still within its schedule point's interval, so a long jitter
	// never makes the next point look missed.
	lag := jitter()
	timer := time.NewTimer(lag)
	defer timer.Stop()
	for {
		var reply chan readResult
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-changes:
		case <-d.wake: // interval changed: to the new interval's next point
			lag = jitter()
			resetTimer(timer, time.Until(nextRead(a.grid, time.Now(), time.Duration(d.interval.Load())))+lag)
			continue
		case reply = <-d.readNow:
		}
		rec, err := a.readOnce(ctx, d)
		if reply != nil {
			reply <- readResult{rec, err}
		}
		if ctx.Err() != nil {
			return
		}
		interval := time.Duration(d.interval.Load())
		point := nextRead(a.grid, time.Now().Add(-lag), interval)
		lag = jitter()
		next := time.Until(point) + lag
		if err != nil {
			// Back off on a failing device, starting sooner than the
			// interval so a glitch recovers fast, capped so a device that
			// comes back is noticed within a few minutes.
			if retry == 0 {
				retry = min(time.Second, interval)
			} else {
				retry = min(2*retry, max(interval, 5*time.Minute))
			}
			next = time.Duration(rng.Int64N(int64(retry)) + int64(retry)/2)
		} else {
			retry = 0
			if notifies && changes == nil {
				// The driver was built late (its bus appeared after
				// start): pick up its change notifications now.
				changes = cn.Changes()
			}
		}
		resetTimer(timer, max(next, 0))
	}
}

// nextRead is the first point of a read schedule (origin + k×interval)
// after now. Devices with one interval thus read together, and with
// readings that arrive together every consumer does one job for all of
// them: one store commit, one uplink batch, one write to each dashboard
// (the hub's write delay gathers what comes within a few milliseconds).
// A read that overran its interval skips the points it missed rather than
// reading again at once; a failing device's retries are off the schedule
// and return to it after the next good read.
func nextRead(origin, now time.Time, interval time.Duration) time.Time {
	if interval <= 0 {
		return now
	}
	if origin.IsZero() {
		// No schedule set (an Agent not started): now.Sub would saturate
		// at some 292 years; Truncate counts from the same zero exactly.
		return now.Truncate(interval).Add(interval)
	}
	k := now.Sub(origin) / interval
	if now.Before(origin) {
		k = -1
	}
	return origin.Add((k + 1) * interval)
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(d)
}

// readOnce reads the device once, bounded by its timeout, and feeds the
// outcome to the pipeline.
func (a *Agent) readOnce(ctx context.Context, d *device) (store.Record, error) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	readings, err := d.sensor.Read(rctx)
	cancel()
	if err == nil && len(readings) == 0 {
		err = errors.New("driver returned no readings")
	}
	if err != nil {
		if ctx.Err() != nil {
			return store.Record{}, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("read timed out after %v: %w", d.cfg.Timeout, err)
		}
		a.readFailed(d, err)
		return store.Record{}, err
	}
	return a.ingest(d, readings)
}

// ingest stamps one successful read, stores it, fans it out, and runs the
// status and alert logic on it.
func (a *Agent) ingest(d *device, readings []sensors.Reading) (store.Record, error) {
	metrics := make([]store.Metric, len(readings))
	for i, r := range readings {
		metrics[i] = store.Metric{Name: r.Metric, Value: r.Value, Unit: r.Unit}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// Stamped under the lock: the clock turns synced under it too, so every
	// record stamped unsynced is queued before Restamp runs.
	rec := a.stamp(store.Record{Kind: store.KindTelemetry, DeviceID: d.cfg.ID, Metrics: metrics})
	rec, err := a.append(rec)
	if err != nil {
		return rec, err
	}
	d.failures = 0
	d.good = a.run.now(time.Now())
	a.viewMu.Lock()
	d.lastSeen = rec.TS
	for _, m := range rec.Metrics {
		if u, ok := d.units[m.Name]; !ok || u != m.Unit {
			units := make(map[string]string, len(d.units)+len(rec.Metrics))
			maps.Copy(units, d.units)
			for _, m := range rec.Metrics {
				units[m.Name] = m.Unit
			}
			d.units = units
			break
		}
	}
	a.viewMu.Unlock()
	switch d.status {
	case store.StatusOnline:
	case "":
		a.setStatusLocked(d, store.StatusOnline, "first reading")
	default:
		a.setStatusLocked(d, store.StatusOnline, "reading again")
	}
	for _, m := range rec.Metrics {
		a.rules.metric(d.cfg.ID, m.Name, m.Value, a.now())
	}
	return rec, nil
}

// readFailed records a failed read: the device turns warning at once and
// offline when it has been silent for OfflineAfter (see checkOffline).
func (a *Agent) readFailed(d *device, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d.failures++
	d.lastErr = err.Error()
	now := a.now()
	if now.Sub(d.logged) >= time.Minute {
		a.log.Warn("device read failed", "device_id", d.cfg.ID, "name", d.cfg.Name, "err", err, "consecutive", d.failures, "suppressed", d.muted)
		d.logged, d.muted = now, 0
	} else {
		d.muted++
	}
	if d.status == store.StatusOnline || d.status == "" {
		a.setStatusLocked(d, store.StatusWarning, "read failed: "+err.Error())
	}
}

// checkOffline advances the running time to t (a monotonic reading) and
// marks devices offline that have been silent for their OfflineAfter of
// it (offline.go), whatever their read loop is doing (it may be stuck in a
// driver).
func (a *Agent) checkOffline(t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.run.tick(t)
	now := a.run.now(t)
	for _, d := range a.order {
		silent := silentFor(now, d.good)
		if d.status != store.StatusOffline && silent >= d.cfg.OfflineAfter {
			reason := fmt.Sprintf("no reading for %v", silent.Round(time.Millisecond))
			if d.lastErr != "" {
				reason += "; last error: " + d.lastErr
			}
			a.setStatusLocked(d, store.StatusOffline, reason)
		}
		a.logLasting(d)
	}
}

// setStatusLocked records a status change. Caller holds a.mu.
func (a *Agent) setStatusLocked(d *device, status, reason string) {
	old := d.status
	if old == "" {
		old = store.StatusOffline
	}
	a.viewMu.Lock()
	d.status, d.reason = status, reason
	a.viewMu.Unlock()
	rec := a.stamp(store.Record{Kind: store.KindDeviceStatus, DeviceID: d.cfg.ID,
		Status: &store.DeviceStatus{Old: old, New: status, Reason: reason, LastSeen: d.lastSeen}})
	if _, err := a.append(rec); err != nil {
		a.log.Error("storing a device status change failed", "device_id", d.cfg.ID, "err", err)
	}
	logged := a.statusLogged(d, old, status)
	if logged {
		args := []any{"device_id", d.cfg.ID, "name", d.cfg.Name, "old", old, "new", status, "reason", reason}
		if old == store.StatusOnline {
			args = append(args, "suppressed", d.flapMuted)
			d.flapMuted = 0
		}
		a.log.Info("device status", args...)
	}
	a.rules.status(d.cfg.ID, d.cfg.Name, status, a.now(), !logged)
}

// statusLogged reports whether a status change of d from old to status
// goes to the log; caller holds a.mu. A change away from online starts
// an episode, logged if none was in the last minute; the changes in it
// and the return to online are logged as it was.
func (a *Agent) statusLogged(d *device, old, status string) bool {
	if status == store.StatusOnline {
		logged := !d.awayMuted
		d.awayMuted = false
		return logged
	}
	if old != store.StatusOnline {
		return !d.awayMuted // within an episode, or the first at start
	}
	now := a.now()
	if !d.flapLogged.IsZero() && now.Sub(d.flapLogged) < time.Minute {
		d.flapMuted++
		d.awayMuted = true
		return false
	}
	d.flapLogged, d.awayMuted = now, false
	return true
}

// logLasting logs a device whose episode away from online was left out of
// the log (statusLogged) and has lasted a minute; caller holds a.mu.
func (a *Agent) logLasting(d *device) {
	now := a.now()
	if !d.awayMuted || now.Sub(d.flapLogged) < time.Minute {
		return
	}
	a.log.Info("device still not online", "device_id", d.cfg.ID, "name", d.cfg.Name, "status", d.status, "reason", d.reason, "suppressed", d.flapMuted)
	d.flapLogged, d.flapMuted, d.awayMuted = now, 0, false
	a.rules.lasting(d.cfg.ID)
}

// deviceSnapshot is one device's state for the APIs.
type deviceSnapshot struct {
	ID       int
	Name     string
	Driver   string
	Status   string
	Reason   string
	LastSeen time.Time
	Units    map[string]string // shared: do not modify
	Interval time.Duration
	Unread   bool // no verdict since start yet: reported offline, "not read yet"
}

func (a *Agent) snapshot() []deviceSnapshot {
	a.viewMu.Lock()
	defer a.viewMu.Unlock()
	out := make([]deviceSnapshot, 0, len(a.order))
	for _, d := range a.order {
		st, reason := d.status, d.reason
		if st == "" {
			st, reason = store.StatusOffline, "not read yet"
		}
		out = append(out, deviceSnapshot{ID: d.cfg.ID, Name: d.cfg.Name, Driver: d.cfg.Driver, Status: st,
			Reason: reason, LastSeen: d.lastSeen, Units: d.units, Interval: time.Duration(d.interval.Load()), Unread: d.status == ""})
	}
	return out
}
