package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// fileFormat is the sessions file: version 1.
type fileFormat struct {
	Version  int       `json:"version"`
	Sessions []*record `json:"sessions"`
}

// load reads the sessions file. A missing file holds no session; one that
// cannot be read as sessions is moved aside (path.corrupt-<unix>) and
// logged: everyone logs in again, the agent starts.
func load(path string, log *slog.Logger) ([]*record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		if err == nil {
			err = fmt.Errorf("version %d, want 1", f.Version)
		}
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		log.Error("the sessions file is unreadable: moved aside, every user logs in again", "file", path, "moved_to", aside, "err", err)
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("session: moving aside %s: %w", path, rerr)
		}
		return nil, nil
	}
	out := f.Sessions[:0]
	for _, r := range f.Sessions {
		if r != nil && len(r.Key) == 64 && r.User != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// save writes every session to the file: a temporary file, synced, then
// renamed over the old one, and the directory synced, so that a power cut
// leaves the old file or the new one.
func (m *Manager) save() error {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	f := fileFormat{Version: 1, Sessions: make([]*record, 0, len(m.sessions))}
	for _, r := range m.sessions {
		r.saved = r.Expires
		c := *r
		f.Sessions = append(f.Sessions, &c)
	}
	m.dirty = false
	m.mu.Unlock()
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	if err := writeFile(m.path, b); err != nil {
		m.mu.Lock()
		m.dirty = true
		m.mu.Unlock()
		return fmt.Errorf("session: %w", err)
	}
	return nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// SaveEvery is how often Run writes renewed expiries. Logins, logouts and
// revocations are written at once; renewals, which every request and open
// connection makes, only this often, and only once one has moved an expiry
// by a tenth of the TTL, to spare the SD card: after a crash a session's
// expiry is at most that much (plus SaveEvery) earlier than it was.
const SaveEvery = time.Minute

// Run writes renewed expiries every SaveEvery until ctx ends, and once
// more then. Without it renewals reach the file only with the next login
// or logout.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(SaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return m.Flush()
		case <-t.C:
			if err := m.Flush(); err != nil {
				m.log.Error("writing the sessions failed", "err", err)
			}
		}
	}
}

// Flush writes the sessions if renewals are pending.
func (m *Manager) Flush() error {
	m.mu.Lock()
	dirty := m.dirty
	m.mu.Unlock()
	if !dirty {
		return nil
	}
	return m.save()
}
