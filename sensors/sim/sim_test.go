package sim

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSeededIsReproducible(t *testing.T) {
	read := func() [][]float64 {
		c := &clock{t: time.Unix(0, 0)}
		d, err := New(&Opts{Kind: Env, Seed: 42, Now: c.now})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]float64
		for i := 0; i < 50; i++ {
			c.t = c.t.Add(time.Second)
			rs, err := d.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var row []float64
			for _, r := range rs {
				row = append(row, r.Value)
			}
			out = append(out, row)
		}
		return out
	}
	a, b := read(), read()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different values")
	}
	for _, row := range a {
		if row[0] < 15 || row[0] > 28 || row[1] < 20 || row[1] > 80 || row[2] < 980 || row[2] > 1040 {
			t.Fatalf("env values out of range: %v", row)
		}
	}
}

func TestHotClimbsPast30(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	d, _ := New(&Opts{Kind: Hot, Seed: 7, Now: c.now})
	hot, cool := false, false
	for i := 0; i < 900; i++ {
		c.t = c.t.Add(time.Second)
		rs, err := d.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].Value > 30 {
			hot = true
		}
		if rs[0].Value < 27 {
			cool = true
		}
	}
	if !hot || !cool {
		t.Fatalf("within 15 minutes the hot probe must pass 30 °C and cool again (hot=%v cool=%v)", hot, cool)
	}
}

func TestCounterCountsEveryPulse(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	d, _ := New(&Opts{Kind: Counter, Now: c.now})
	var prev float64
	for i := 0; i < 20; i++ {
		c.t = c.t.Add(2 * time.Second)
		rs, err := d.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].Value < prev {
			t.Fatalf("total went backwards: %v after %v", rs[0].Value, prev)
		}
		if i > 0 && rs[1].Value*2 != rs[0].Value-prev {
			t.Fatalf("rate %v does not match the increment %v over 2 s", rs[1].Value, rs[0].Value-prev)
		}
		prev = rs[0].Value
	}
}

func TestFaults(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	d, err := New(&Opts{Kind: Env, Now: c.now, Faults: Faults{
		Offline: Spell{Every: 10 * time.Minute, For: time.Minute},
		Stuck:   Spell{Every: 5 * time.Minute, For: 30 * time.Second},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.t = c.t.Add(4*time.Minute + 29*time.Second)
	before, err := d.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(2 * time.Second) // inside the stuck spell
	stuck, err := d.Read(ctx)
	if err != nil || !reflect.DeepEqual(before, stuck) {
		t.Fatalf("stuck spell must repeat the values: %v vs %v (%v)", before, stuck, err)
	}
	c.t = time.Unix(0, 0).Add(9*time.Minute + 30*time.Second)
	if _, err := d.Read(ctx); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline spell: got %v", err)
	}
	c.t = c.t.Add(time.Minute)
	if _, err := d.Read(ctx); err != nil {
		t.Fatalf("after the spell: %v", err)
	}

	flaky, _ := New(&Opts{Faults: Faults{ErrorRate: 0.5}, Seed: 3})
	fails := 0
	for i := 0; i < 1000; i++ {
		if _, err := flaky.Read(ctx); errors.Is(err, ErrInjected) {
			fails++
		}
	}
	if fails < 400 || fails > 600 {
		t.Fatalf("error_rate 0.5 failed %d of 1000 reads", fails)
	}
}

func TestBadOpts(t *testing.T) {
	for _, o := range []Opts{
		{Kind: "laser"},
		{Faults: Faults{ErrorRate: 1.5}},
		{Faults: Faults{Offline: Spell{Every: time.Minute, For: 2 * time.Minute}}},
	} {
		if _, err := New(&o); err == nil {
			t.Errorf("New(%+v) accepted bad options", o)
		}
	}
}
