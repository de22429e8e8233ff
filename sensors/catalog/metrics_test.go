package catalog_test

import (
	"context"
	"slices"
	"testing"

	"github.com/floorhub/floorhub/sensors/catalog"
)

// TestMetrics checks the names each driver declares, which the agent's
// config check holds rules against; TestBuild reads the same devices
// through fakes and sees these names.
func TestMetrics(t *testing.T) {
	want := map[int][]string{
		1:  {"temp_room", "humidity", "pressure"},
		2:  {"temperature", "pressure"},
		3:  {"temperature"},
		10: {"temperature"},
		4:  {"temperature"},
		5:  {"oven"},
		6:  {"door_open", "door_open_changes"},
		7:  {"energy", "power"},
		8:  {"line_pressure", "ain2_3"},
		9:  {"ain3"},
	}
	for _, s := range specs(t, good) {
		got, err := catalog.Metrics(&s)
		if err != nil || !slices.Equal(got, want[s.ID]) {
			t.Errorf("device %d (%s): Metrics = %v, %v; want %v", s.ID, s.Driver, got, err, want[s.ID])
		}
	}
	bad := catalog.Spec{ID: 1, Driver: "nope"}
	if _, err := catalog.Metrics(&bad); err == nil {
		t.Error("Metrics of an unknown driver: no error")
	}
}

// TestMetricsSimRead checks the simulated drivers' declared names against
// what they really report.
func TestMetricsSimRead(t *testing.T) {
	for _, d := range []string{"sim-env", "sim-hot", "sim-door", "sim-counter"} {
		s := catalog.Spec{ID: 1, Driver: d}
		want, err := catalog.Metrics(&s)
		if err != nil {
			t.Fatal(err)
		}
		sen, err := catalog.Build(&s, nil)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := sen.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.Metric)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s reads %v, declares %v", d, got, want)
		}
	}
}
