package modbus

import "sort"

// Request is one read request of a plan: Count registers (or bits) of
// Table from Address, holding the register map entries Entries.
type Request struct {
	Table   Table
	Address int
	Count   int
	// Entries are indexes into the register map, in address order.
	Entries []int
}

// Plan groups a valid register map (Options.Validate accepted it) into as
// few read requests as the protocol allows: entries of one table whose
// addresses follow each other with no gap share a request, up to 125
// registers or 2000 bits. Gaps are not bridged: an address the device does
// not map would fail the whole request with "illegal data address".
// Requests come in table order (holding, input, coils, discrete inputs),
// then address order.
func Plan(regs []Register) []Request {
	idx := byTableAddress(regs)
	var out []Request
	for _, i := range idx {
		r := &regs[i]
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.Table == r.Table && last.Address+last.Count == r.Address && last.Count+r.count() <= r.Table.maxCount() {
				last.Count += r.count()
				last.Entries = append(last.Entries, i)
				continue
			}
		}
		out = append(out, Request{Table: r.Table, Address: r.Address, Count: r.count(), Entries: []int{i}})
	}
	return out
}

// byTableAddress returns the indexes of regs in table order, then address
// order (stable: equal keys keep their map order).
func byTableAddress(regs []Register) []int {
	idx := make([]int, len(regs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ra, rb := &regs[idx[a]], &regs[idx[b]]
		if ra.Table != rb.Table {
			return ra.Table < rb.Table
		}
		return ra.Address < rb.Address
	})
	return idx
}
