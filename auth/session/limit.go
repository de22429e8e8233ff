package session

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// limiter is a token bucket of login attempts per client address.
type limiter struct {
	perMinute int
	now       func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxAddrs bounds the addresses remembered; beyond it full buckets (those
// of addresses quiet for a minute) are forgotten first, then the least
// recently used one: a flood from many addresses must not lock out an
// address never seen before (it used to be refused for a minute).
const maxAddrs = 4096

// limitKey is the limiter's key of a request's RemoteAddr: the IP, or for
// IPv6 its /64 (one host usually holds a whole /64, so per-address keys
// would give it 2^64 buckets).
func limitKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}

// allow takes one attempt from addr's bucket; when it is empty it returns
// false and how long until the next attempt is allowed.
func (l *limiter) allow(addr string) (bool, time.Duration) {
	now := l.now()
	rate := float64(l.perMinute) / 60 // tokens per second
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= maxAddrs {
			for a, o := range l.buckets {
				if now.Sub(o.last) >= time.Minute {
					delete(l.buckets, a)
				}
			}
			if len(l.buckets) >= maxAddrs {
				var oldest string
				for a, o := range l.buckets {
					if oldest == "" || o.last.Before(l.buckets[oldest].last) {
						oldest = a
					}
				}
				delete(l.buckets, oldest)
			}
		}
		b = &bucket{tokens: float64(l.perMinute), last: now}
		l.buckets[addr] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(float64(l.perMinute), b.tokens+el*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}
