package agent

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/floorhub/floorhub/store"
)

// rules evaluates the alert rules. It is driven under Agent.mu, so it needs
// no lock of its own.
type rules struct {
	a     *Agent
	list  []RuleConfig
	state map[ruleKey]*ruleState
}

type ruleKey struct {
	rule   string
	device int
}

type ruleState struct {
	pendingSince time.Time // when the condition started to hold; zero: not holding
	activeID     uint64    // the active alert's ID; 0: none
	// A value hovering at a threshold raises and clears an alert on
	// every reading: a threshold rule's raises are logged at most once a
	// minute (all are stored), the clear of a raise left out is left out
	// too, and a raise left out that is still active a minute on is
	// logged then, so the journal never ends on a cleared alert that is
	// active.
	logged     time.Time // last raise logged
	muted      int       // raises not logged since then
	raiseMuted bool      // the active alert's raise was not logged
}

func newRules(a *Agent, list []RuleConfig) *rules {
	return &rules{a: a, list: list, state: map[ruleKey]*ruleState{}}
}

func (r *rules) get(k ruleKey) *ruleState {
	s := r.state[k]
	if s == nil {
		s = &ruleState{}
		r.state[k] = s
	}
	return s
}

func watches(rule *RuleConfig, device int) bool {
	if len(rule.DeviceIDs) == 0 {
		return true
	}
	for _, id := range rule.DeviceIDs {
		if id == device {
			return true
		}
	}
	return false
}

// metric feeds one measured value to the threshold rules.
func (r *rules) metric(device int, metric string, v float64, now time.Time) {
	for i := range r.list {
		rule := &r.list[i]
		if rule.Offline || rule.Metric != metric || !watches(rule, device) {
			continue
		}
		s := r.get(ruleKey{rule.Name, device})
		threshold, above := 0.0, rule.Above != nil
		if above {
			threshold = *rule.Above
		} else {
			threshold = *rule.Below
		}
		clear := threshold
		if rule.Clear != nil {
			clear = *rule.Clear
		}
		if s.activeID != 0 {
			if (above && v <= clear) || (!above && v >= clear) {
				r.clear(rule, device, s, threshold, v, fmt.Sprintf("%s back to %s", metric, num(v)))
			} else if s.raiseMuted && now.Sub(s.logged) >= time.Minute {
				r.a.log.Warn("alert still active", "alert_id", s.activeID, "rule", rule.Name, "device_id", device, "severity", rule.Severity, "actual", v, "suppressed", s.muted)
				s.logged, s.muted, s.raiseMuted = now, 0, false
			}
			continue
		}
		if (above && v > threshold) || (!above && v < threshold) {
			if s.pendingSince.IsZero() {
				s.pendingSince = now
			}
			if now.Sub(s.pendingSince) >= rule.For {
				r.raise(rule, device, s, threshold, v)
			}
		} else {
			s.pendingSince = time.Time{}
		}
	}
}

// status feeds a device status change to the offline rules.
// quiet: the device's change was left out of the log (statusLogged), and
// so is what it does to an alert.
func (r *rules) status(device int, name, status string, now time.Time, quiet bool) {
	for i := range r.list {
		rule := &r.list[i]
		if !rule.Offline || !watches(rule, device) {
			continue
		}
		s := r.get(ruleKey{rule.Name, device})
		switch {
		case status == store.StatusOffline && s.activeID == 0:
			r.raise(rule, device, s, 0, 0)
			if s.activeID == 0 {
				continue // not stored, logged by raise
			}
			s.raiseMuted = quiet
			if !quiet {
				r.a.log.Warn("alert raised", "alert_id", s.activeID, "rule", rule.Name, "device_id", device, "severity", rule.Severity, "actual", 0)
			}
		case status == store.StatusOnline && s.activeID != 0:
			r.clear(rule, device, s, 0, 0, "device is reading again")
		}
	}
}

// lasting logs the offline alerts of device whose raise was left out
// with its episode (status, quiet), once logLasting has logged that the
// episode lasts: their clear is then logged too.
func (r *rules) lasting(device int) {
	for i := range r.list {
		rule := &r.list[i]
		if !rule.Offline || !watches(rule, device) {
			continue
		}
		if s := r.state[ruleKey{rule.Name, device}]; s != nil && s.activeID != 0 && s.raiseMuted {
			r.a.log.Warn("alert still active", "alert_id", s.activeID, "rule", rule.Name, "device_id", device, "severity", rule.Severity)
			s.raiseMuted = false
		}
	}
}

func (r *rules) raise(rule *RuleConfig, device int, s *ruleState, threshold, actual float64) {
	msg := expand(rule.Message, r.a.deviceName(device), rule.Metric, threshold, actual)
	rec := r.a.stamp(store.Record{Kind: store.KindAlert, DeviceID: device, Alert: &store.Alert{
		Rule: rule.Name, Severity: rule.Severity, Title: rule.Title, Message: msg,
		State: store.AlertActive, Threshold: threshold, Actual: actual, Metric: rule.Metric,
	}})
	rec, err := r.a.append(rec)
	if err != nil {
		r.a.log.Error("storing an alert failed", "rule", rule.Name, "device_id", device, "err", err)
		return
	}
	s.activeID, s.pendingSince = rec.Alert.ID, time.Time{}
	if rule.Offline {
		return // logged by status, as the device's change was
	}
	now := r.a.now()
	if !s.logged.IsZero() && now.Sub(s.logged) < time.Minute {
		s.muted++
		s.raiseMuted = true
		return
	}
	r.a.log.Warn("alert raised", "alert_id", s.activeID, "rule", rule.Name, "device_id", device, "severity", rule.Severity, "actual", actual, "suppressed", s.muted)
	s.logged, s.muted, s.raiseMuted = now, 0, false
}

func (r *rules) clear(rule *RuleConfig, device int, s *ruleState, threshold, actual float64, why string) {
	rec := r.a.stamp(store.Record{Kind: store.KindAlert, DeviceID: device, Alert: &store.Alert{
		ID: s.activeID, Rule: rule.Name, Severity: rule.Severity, Title: rule.Title, Message: why,
		State: store.AlertCleared, Threshold: threshold, Actual: actual, Metric: rule.Metric,
	}})
	if _, err := r.a.append(rec); err != nil {
		r.a.log.Error("storing an alert clear failed", "rule", rule.Name, "device_id", device, "err", err)
		return
	}
	if !s.raiseMuted {
		r.a.log.Info("alert cleared", "alert_id", s.activeID, "rule", rule.Name, "device_id", device)
	}
	s.activeID, s.pendingSince, s.raiseMuted = 0, time.Time{}, false
}

// ruleAlerts is how many alerts of one rule are active.
type ruleAlerts struct {
	Rule, Severity string
	Active         int
}

// active counts the active alerts of each configured rule, in config order.
func (r *rules) active() []ruleAlerts {
	out := make([]ruleAlerts, len(r.list))
	at := map[string]int{}
	for i, rule := range r.list {
		out[i] = ruleAlerts{Rule: rule.Name, Severity: rule.Severity}
		at[rule.Name] = i
	}
	for k, s := range r.state {
		if i, ok := at[k.rule]; ok && s.activeID != 0 {
			out[i].Active++
		}
	}
	return out
}

// replace swaps in a reloaded rule list; devices holds the configured
// device ids. An active alert whose rule is gone, no longer watches its
// device (or the device is gone), or now watches another metric or the
// offline state is cleared; a rule that changed otherwise keeps its active
// alerts (they clear by the new threshold) but starts its pending time over.
func (r *rules) replace(list []RuleConfig, devices map[int]bool) {
	before := map[string]RuleConfig{}
	for _, rule := range r.list {
		before[rule.Name] = rule
	}
	after := map[string]*RuleConfig{}
	for i := range list {
		after[list[i].Name] = &list[i]
	}
	r.list = list
	keys := make([]ruleKey, 0, len(r.state))
	for k := range r.state {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].rule != keys[j].rule {
			return keys[i].rule < keys[j].rule
		}
		return keys[i].device < keys[j].device
	})
	for _, k := range keys {
		s := r.state[k]
		old, nr := before[k.rule], after[k.rule]
		var why string
		switch {
		case nr == nil:
			why = "rule no longer configured"
		case !devices[k.device]:
			why = "device no longer configured"
		case !watches(nr, k.device):
			why = "rule no longer watches the device"
		case nr.Offline != old.Offline || nr.Metric != old.Metric:
			why = "rule changed what it watches"
		default:
			if !reflect.DeepEqual(old, *nr) {
				s.pendingSince = time.Time{}
			}
			continue
		}
		if s.activeID != 0 {
			r.clear(&old, k.device, s, 0, 0, why)
		}
		delete(r.state, k)
	}
}

// restore takes the alerts that were active when the agent last stopped,
// so they are neither raised twice nor left active for ever. Alerts whose
// rule is gone from the config are cleared.
func (r *rules) restore(active []store.Record) {
	known := map[string]*RuleConfig{}
	for i := range r.list {
		known[r.list[i].Name] = &r.list[i]
	}
	for _, rec := range active {
		al := rec.Alert
		if al == nil {
			continue
		}
		if rule := known[al.Rule]; rule != nil {
			r.get(ruleKey{al.Rule, rec.DeviceID}).activeID = al.ID
			continue
		}
		gone := &RuleConfig{Name: al.Rule, Severity: al.Severity, Title: al.Title, Metric: al.Metric}
		r.clear(gone, rec.DeviceID, &ruleState{activeID: al.ID}, al.Threshold, al.Actual, "rule no longer configured")
	}
}

func expand(tmpl, device, metric string, threshold, actual float64) string {
	return strings.NewReplacer("{device}", device, "{metric}", metric,
		"{threshold}", num(threshold), "{value}", num(actual)).Replace(tmpl)
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
