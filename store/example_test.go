package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/floorhub/floorhub/store"
)

func Example() {
	dir, _ := os.MkdirTemp("", "store-example")
	defer os.RemoveAll(dir)

	s, err := store.Open(filepath.Join(dir, "floorhub.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// The agent appends; the seq is known at once, durability comes with
	// the next group commit.
	r, err := s.Append(store.Record{
		Kind: store.KindTelemetry, DeviceID: 1, TS: time.Now(), ClockSynced: true,
		Metrics: []store.Metric{{Name: "temperature", Value: 21.5, Unit: "°C"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Flush(context.Background()); err != nil {
		log.Fatal(err)
	}

	// An uplink reads after its cursor and acks what the broker took.
	cur, _ := s.Cursor("mqtt")
	recs, _ := s.Read(cur, 100)
	for _, rec := range recs {
		fmt.Println(rec.Seq, rec.Kind, rec.Metrics[0].Name, rec.Metrics[0].Value)
	}
	_ = s.SetCursor("mqtt", r.Seq)
	n, _, _ := s.Backlog(r.Seq)
	fmt.Println("backlog", n)
	// Output:
	// 1 telemetry temperature 21.5
	// backlog 0
}
