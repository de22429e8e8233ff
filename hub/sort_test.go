package hub

import (
	"testing"

	"github.com/floorhub/floorhub/store"
)

func TestSortBySeq(t *testing.T) {
	for _, seqs := range [][]uint64{nil, {1}, {1, 2, 3}, {2, 1, 3}, {3, 2, 1}, {1, 3, 2, 5, 4, 6}} {
		recs := make([]*store.Record, len(seqs))
		for i, s := range seqs {
			recs[i] = &store.Record{Seq: s}
		}
		sortBySeq(recs)
		for i := 1; i < len(recs); i++ {
			if recs[i].Seq < recs[i-1].Seq {
				t.Fatalf("%v: not sorted at %d", seqs, i)
			}
		}
	}
}
