package store

import (
	"math/rand"
	"reflect"
	"testing"
	"time"
)

func TestCodecRoundTrip(t *testing.T) {
	d := newDict()
	recs := []Record{tele(1, 21.5), raise(-2), clearing(3, 7), status(4), {Kind: KindTelemetry, TS: time.Unix(0, -5).UTC()}}
	for i, r := range recs {
		enc, err := d.encode(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(d.snapshot(), uint64(i+1), enc)
		if err != nil {
			t.Fatal(err)
		}
		r.Seq = uint64(i + 1)
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got, r)
		}
		// Every truncation is an error, never a panic or a wrong record.
		for n := 0; n < len(enc); n++ {
			if _, err := decode(d.snapshot(), 1, enc[:n]); err == nil {
				t.Fatalf("record %d cut to %d of %d bytes decoded", i, n, len(enc))
			}
		}
	}
}

// Random bytes after a valid header never panic the decoder.
func TestDecodeGarbage(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	strs := []string{"a", "b"}
	for i := 0; i < 200000; i++ {
		b := make([]byte, rng.Intn(64))
		rng.Read(b)
		if len(b) > offKind {
			b[offVersion] = formatV1
			b[offKind] = byte(1 + rng.Intn(3))
		}
		decode(strs, 1, b)
	}
}

func FuzzDecode(f *testing.F) {
	d := newDict()
	for _, r := range []Record{tele(1, 2), raise(1), status(1), chatMsg(1, 2, 3, "hi"), chatMsg(4, -1, 0, "\x00")} {
		enc, _ := d.encode(nil, &r)
		f.Add(enc)
	}
	strs := d.snapshot()
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decode(strs, 1, b)
		from, ok := chatSender(strs, b)
		if chat := err == nil && r.Kind == KindChat; ok != chat || (ok && from != r.Chat.From) {
			t.Fatalf("chatSender = %d, %v; decode = %+v, %v", from, ok, r.Chat, err)
		}
	})
}
